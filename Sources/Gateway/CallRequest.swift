import Metering
import NIOCore
import Policy

/// What every call has, even one refused before its route is known: for error bodies and rows.
struct RequestLine {
    /// The id of the call's row (every row the request makes uses it), made with the line.
    var callID: String
    /// `x-request-id`: the client's, or `req_` and `callID` (see `CallIdentity.requestID`).
    var requestID: String
    var startedAt: Int64
    var dialect: Dialect
    /// The endpoint's name (`chat.completions`), or the raw path of an unknown route.
    var route: String
}

/// A proxied call as the gateway received it: plain values, no channel.
struct CallRequest {
    let endpoint: Endpoint
    /// Its ids and start, as every row of the request has them (the line is made with `endpoint`).
    let line: RequestLine
    /// The secret the caller presented (`Authorization: Bearer` or `x-api-key`).
    var presentedSecret: String?
    /// Client headers that are forwarded (protocol versions and betas).
    var forwardedHeaders: [(String, String)]
    /// `x-tokenctl-user`: the end user a service key calls for (honoured only for such keys).
    var declaredEndUser: String?
    /// `Idempotency-Key`: a repeat of a completed call gets its answer again (`IdempotencyStore`).
    var idempotencyKey: String? = nil
    var body: ByteBuffer

    var callID: String { line.callID }
    var requestID: String { line.requestID }
    var startedAt: Int64 { line.startedAt }

    /// The `anthropic-beta` going upstream (the client's lines, else the provider's static one)
    /// names interleaved thinking, whose thinking budget may pass `max_tokens`.
    func asksInterleavedThinking(at provider: Provider) -> Bool {
        let client = forwardedHeaders.filter { $0.0 == "anthropic-beta" }.map(\.1)
        let betas = client.isEmpty ? provider.header("anthropic-beta").map { [$0] } ?? [] : client
        return betas.contains { $0.lowercased().contains("interleaved-thinking") }
    }
}

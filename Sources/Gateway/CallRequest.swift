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
    /// Whose it is, when the request's head was checked already (`ProxyHandler.caller`).
    var caller: Principal? = nil
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
        func interleaved(_ beta: String) -> Bool { beta.lowercased().contains("interleaved-thinking") }
        var clientSentOne = false
        for (name, value) in forwardedHeaders where name == "anthropic-beta" {
            if interleaved(value) { return true }
            clientSentOne = true
        }
        return !clientSentOne && provider.header("anthropic-beta").map(interleaved) == true
    }
}

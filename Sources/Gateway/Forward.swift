import Metering
import NIOCore
import Policy
import Upstream

/// Builds the upstream request for an admitted call. The caller's key never leaves: the
/// provider's key from the environment replaces it.
enum Forward {
    static func upstreamRequest(for request: CallRequest, admission: Admission) -> UpstreamRequest {
        let provider = admission.provider
        var headers: [(String, String)] = []
        headers.reserveCapacity(4 + request.forwardedHeaders.count + provider.headers.count)
        headers.append(("content-type", "application/json"))
        headers.append(("user-agent", "tokenctl/0.1"))
        headers.append(("x-request-id", request.requestID))
        if let key = provider.keyHeader { headers.append((key.name, key.value)) }
        // A handful of names: a scan is cheaper than hashing them into a set on every call. Only
        // the gateway's own are checked: a client's repeated line (two `anthropic-beta`) all go.
        let own = headers.count
        for (name, value) in request.forwardedHeaders where !headers[..<own].contains(where: { $0.0 == name }) {
            headers.append((name, value))
        }
        let sent = headers.count
        for (name, value) in provider.headers {
            let lower = name.lowercased()
            if !headers[..<sent].contains(where: { $0.0 == lower }) { headers.append((lower, value)) }
        }
        return UpstreamRequest(
            url: provider.baseURL + request.endpoint.upstreamPath,
            method: "POST",
            headers: headers,
            body: admission.upstreamBody,
            connectTimeoutMs: provider.connectTimeoutMs,
            totalTimeoutMs: provider.timeoutMs,
            certificateAuthoritiesPEM: provider.certificateAuthorities?.pem,
            http2: provider.http2)
    }

    /// Client headers worth forwarding: protocol versions, betas and content negotiation.
    /// Everything else (notably the caller's credentials and hop-by-hop headers) stays here.
    static let forwardedClientHeaders = HeaderNameSet([
        "anthropic-version", "anthropic-beta", "openai-beta", "accept",
    ])
}

import Metering
import NIOCore
import Policy
import Upstream

/// Builds the upstream request for an admitted call. The caller's key never leaves: the
/// provider's key from the environment replaces it.
enum Forward {
    static func upstreamRequest(for request: CallRequest, admission: Admission) -> UpstreamRequest {
        let provider = admission.provider
        var headers: [(String, String)] = [
            ("content-type", "application/json"),
            ("user-agent", "tokenctl/0.1"),
            ("x-request-id", request.requestID),
        ]
        if let key = provider.apiKey {
            switch provider.dialect {
            case .openai: headers.append(("authorization", "Bearer " + key))
            case .anthropic: headers.append(("x-api-key", key))
            }
        }
        var sent = Set(headers.map { $0.0 })
        for (name, value) in request.forwardedHeaders where !sent.contains(name) {
            headers.append((name, value))
            sent.insert(name)
        }
        for (name, value) in provider.headers where !sent.contains(name.lowercased()) {
            headers.append((name.lowercased(), value))
        }
        return UpstreamRequest(
            url: provider.baseURL + request.endpoint.upstreamPath,
            method: "POST",
            headers: headers,
            body: admission.upstreamBody,
            connectTimeoutMs: provider.connectTimeoutMs,
            totalTimeoutMs: provider.timeoutMs)
    }

    /// Client headers worth forwarding: protocol versions, betas and content negotiation.
    /// Everything else (notably the caller's credentials and hop-by-hop headers) stays here.
    static let forwardedClientHeaders: Set<String> = [
        "anthropic-version", "anthropic-beta", "openai-beta", "accept",
    ]
}

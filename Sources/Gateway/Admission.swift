import Metering
import NIOCore
import Policy

/// What every call has, even one refused before its route is known: for error bodies and rows.
struct RequestLine {
    var requestID: String
    var startedAt: Int64
    var dialect: Dialect
    /// The endpoint's name (`chat.completions`), or the raw path of an unknown route.
    var route: String
}

/// A proxied call as the gateway received it: plain values, no channel.
struct CallRequest {
    var endpoint: Endpoint
    var requestID: String
    var startedAt: Int64
    /// The secret the caller presented (`Authorization: Bearer` or `x-api-key`).
    var presentedSecret: String?
    /// Client headers that are forwarded (protocol versions and betas).
    var forwardedHeaders: [(String, String)]
    var body: ByteBuffer

    var line: RequestLine {
        RequestLine(requestID: requestID, startedAt: startedAt, dialect: endpoint.dialect, route: endpoint.rawValue)
    }
}

/// The decision to let a call go upstream, with everything forwarding and settlement need.
struct Admission {
    var principal: Principal
    var model: String
    var provider: Provider
    var price: ModelPrice?
    var stream: Bool
    /// The body sent upstream: the client's, or with `stream_options.include_usage` injected.
    var upstreamBody: ByteBuffer
    /// The proxy injected the usage chunk, so it must strip it before the client sees it.
    var stripInjectedUsage: Bool
}

/// Identify → admit, before any byte goes upstream. Pure: reads the policy and the request only.
enum Admit {
    static func identify(_ request: CallRequest, in principals: PrincipalDirectory) -> Result<Principal, Refusal> {
        guard let secret = request.presentedSecret, !secret.isEmpty else {
            return .failure(Refusal(.unauthenticated, missingKeyMessage(request.endpoint.dialect)))
        }
        guard let principal = principals.principal(forSecret: secret) else {
            return .failure(Refusal(.unauthenticated, "Invalid API key: the key is unknown or was revoked."))
        }
        return .success(principal)
    }

    static func admit(_ request: CallRequest, principal: Principal, policy: PolicySet,
                      today: Day) -> Result<Admission, Refusal> {
        let peek: RequestPeek
        let model: String
        do {
            peek = try RequestPeek(body: request.body)
            model = try peek.requireModel()
        } catch {
            return .failure(Refusal(.badRequest, "Invalid request body: \(error.message).", field: error.field))
        }
        guard let provider = policy.provider(forModel: model) else {
            return .failure(Refusal(.unknownModel,
                "The model '\(model)' is not routed by this gateway's policy (see providers.yaml).",
                field: "model"))
        }
        guard provider.dialect == request.endpoint.dialect else {
            return .failure(Refusal(.badRequest,
                "The model '\(model)' is served in the \(provider.dialect.rawValue) dialect; call it through the \(provider.dialect.rawValue) API, not \(request.endpoint.proxyPath).",
                field: "model"))
        }
        let price = policy.prices.price(for: model, on: today)
        if price == nil, request.endpoint != .countTokens, policy.gateway.unpricedModels == .refuse {
            return .failure(Refusal(.unpriced,
                "The model '\(model)' has no price in prices.yaml, so its cost cannot be accounted; the gateway refuses unpriced models.",
                field: "model"))
        }
        if provider.apiKeyEnv != nil, provider.apiKey == nil {
            return .failure(Refusal(.providerKeyMissing,
                "The gateway has no key for provider '\(provider.name)': set \(provider.apiKeyEnv ?? "") where tokenctl runs."))
        }

        // OpenAI streams report usage only when asked: ask, and strip the answer later.
        let strip = peek.stream && peek.needsIncludeUsage
            && (request.endpoint == .chatCompletions || request.endpoint == .completions)
        let body = strip ? peek.withIncludeUsage(request.body) : request.body
        return .success(Admission(principal: principal, model: model, provider: provider, price: price,
                                  stream: peek.stream, upstreamBody: body, stripInjectedUsage: strip))
    }

    private static func missingKeyMessage(_ dialect: Dialect) -> String {
        switch dialect {
        case .openai: return "You didn't provide an API key: send it as 'Authorization: Bearer <key>'."
        case .anthropic: return "x-api-key header is required."
        }
    }
}

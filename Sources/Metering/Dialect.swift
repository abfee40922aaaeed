/// The API family a caller speaks. Errors, auth headers and usage shapes follow it.
public enum Dialect: String, Sendable, Hashable, CaseIterable, Codable {
    case openai
    case anthropic
}

/// The provider operation a call targets; decides how usage is read from the answer.
public enum Endpoint: String, Sendable, Hashable, CaseIterable, Codable {
    case chatCompletions = "chat.completions"
    case completions = "completions"
    case embeddings = "embeddings"
    case responses = "responses"
    case messages = "messages"
    case countTokens = "messages.count_tokens"

    public var dialect: Dialect {
        switch self {
        case .chatCompletions, .completions, .embeddings, .responses: return .openai
        case .messages, .countTokens: return .anthropic
        }
    }

    /// Path below the provider's base URL (OpenAI base URLs end in `/v1`, Anthropic's do not).
    public var upstreamPath: String {
        switch self {
        case .chatCompletions: return "/chat/completions"
        case .completions: return "/completions"
        case .embeddings: return "/embeddings"
        case .responses: return "/responses"
        case .messages: return "/v1/messages"
        case .countTokens: return "/v1/messages/count_tokens"
        }
    }

    /// Path the client calls on tokenctl.
    public var proxyPath: String {
        switch self {
        case .chatCompletions: return "/v1/chat/completions"
        case .completions: return "/v1/completions"
        case .embeddings: return "/v1/embeddings"
        case .responses: return "/v1/responses"
        case .messages: return "/v1/messages"
        case .countTokens: return "/v1/messages/count_tokens"
        }
    }

    public init?(proxyPath: String) {
        guard let match = Endpoint.allCases.first(where: { $0.proxyPath == proxyPath }) else { return nil }
        self = match
    }
}

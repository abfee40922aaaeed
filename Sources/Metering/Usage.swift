/// Tokens of one call, normalised across dialects so that each field is billed at exactly one price.
///
/// - `inputTokens`: input billed at the plain input price — excludes cache reads and cache writes
///   (OpenAI's `prompt_tokens` includes `cached_tokens`, so they are subtracted; Anthropic's
///   `input_tokens` already excludes them).
/// - `cachedInputTokens`: input read from the provider's prompt cache.
/// - `cacheWriteTokens`: input written to the prompt cache (Anthropic `cache_creation_input_tokens`).
/// - `cacheWrite1hTokens`: the part of `cacheWriteTokens` written to Anthropic's 1-hour cache
///   (`cache_creation.ephemeral_1h_input_tokens`), which has a price of its own; the rest is
///   5-minute writes.
/// - `outputTokens`: all generated tokens, reasoning included (billed at the output price).
/// - `reasoningTokens`: the part of `outputTokens` spent on hidden reasoning (informational).
/// - `webSearches`: searches a server-side web search tool made for the call, each billed a fee
///   (Anthropic's `usage.server_tool_use.web_search_requests`; a Responses answer's
///   `web_search_call` items).
/// - `audioInputTokens`, `audioOutputTokens`: the parts of `inputTokens` and `outputTokens` that
///   are audio (OpenAI's `prompt_tokens_details.audio_tokens` and
///   `completion_tokens_details.audio_tokens`), which audio models price far above text.
/// - `fileSearches`: calls of the Responses API's file search tool made for the call (its
///   answer's `file_search_call` items), each billed a fee.
public struct Usage: Sendable, Hashable, Codable {
    public var inputTokens: Int
    public var cachedInputTokens: Int
    public var cacheWriteTokens: Int
    public var cacheWrite1hTokens: Int
    public var outputTokens: Int
    public var reasoningTokens: Int
    public var webSearches: Int
    public var audioInputTokens: Int
    public var audioOutputTokens: Int
    public var fileSearches: Int

    public init(inputTokens: Int = 0, cachedInputTokens: Int = 0, cacheWriteTokens: Int = 0,
                cacheWrite1hTokens: Int = 0, outputTokens: Int = 0, reasoningTokens: Int = 0, webSearches: Int = 0,
                audioInputTokens: Int = 0, audioOutputTokens: Int = 0, fileSearches: Int = 0) {
        self.inputTokens = inputTokens
        self.cachedInputTokens = cachedInputTokens
        self.cacheWriteTokens = cacheWriteTokens
        self.cacheWrite1hTokens = cacheWrite1hTokens
        self.outputTokens = outputTokens
        self.reasoningTokens = reasoningTokens
        self.webSearches = webSearches
        self.audioInputTokens = audioInputTokens
        self.audioOutputTokens = audioOutputTokens
        self.fileSearches = fileSearches
    }

    private enum CodingKeys: String, CodingKey {
        case inputTokens, cachedInputTokens, cacheWriteTokens, cacheWrite1hTokens, outputTokens, reasoningTokens, webSearches
        case audioInputTokens, audioOutputTokens, fileSearches
    }

    /// Rows kept by an earlier version (the in-flight journal) have no 1-hour count, searches,
    /// audio nor file searches: 0.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(inputTokens: try c.decode(Int.self, forKey: .inputTokens),
                  cachedInputTokens: try c.decode(Int.self, forKey: .cachedInputTokens),
                  cacheWriteTokens: try c.decode(Int.self, forKey: .cacheWriteTokens),
                  cacheWrite1hTokens: try c.decodeIfPresent(Int.self, forKey: .cacheWrite1hTokens) ?? 0,
                  outputTokens: try c.decode(Int.self, forKey: .outputTokens),
                  reasoningTokens: try c.decode(Int.self, forKey: .reasoningTokens),
                  webSearches: try c.decodeIfPresent(Int.self, forKey: .webSearches) ?? 0,
                  audioInputTokens: try c.decodeIfPresent(Int.self, forKey: .audioInputTokens) ?? 0,
                  audioOutputTokens: try c.decodeIfPresent(Int.self, forKey: .audioOutputTokens) ?? 0,
                  fileSearches: try c.decodeIfPresent(Int.self, forKey: .fileSearches) ?? 0)
    }

    public static let zero = Usage()

    /// All prompt-side tokens, whatever their price.
    public var totalInputTokens: Int { inputTokens + cachedInputTokens + cacheWriteTokens }
    public var totalTokens: Int { totalInputTokens + outputTokens }
}

/// Where a row's usage came from.
public enum UsageSource: String, Sendable, Hashable, Codable {
    /// Reported by the provider in the body or stream.
    case provider
    /// Estimated by tokenctl (e.g. a cancelled stream without a usage event).
    case estimated
    /// No usage (refused before upstream, or upstream failed).
    case none
}

/// Searches a stream showed finished, by tool: web searches (Responses' web search tool,
/// Anthropic's) and the Responses API's file search calls.
public struct SearchCalls: Sendable, Hashable {
    public var web = 0
    public var file = 0

    public init(web: Int = 0, file: Int = 0) {
        self.web = web
        self.file = file
    }

    /// Each count at least `other`'s (two reports of the same searches, one may have missed some).
    mutating func raise(to other: SearchCalls) {
        web = max(web, other.web)
        file = max(file, other.file)
    }
}

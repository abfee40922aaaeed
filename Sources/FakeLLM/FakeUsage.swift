/// The two wire dialects FakeLLM speaks.
public enum FakeDialect: String, Sendable {
    case openAI, anthropic
}

/// The routes FakeLLM serves.
public enum FakeRoute: String, Sendable, CaseIterable {
    case chatCompletions = "POST /v1/chat/completions"
    case completions = "POST /v1/completions"
    case embeddings = "POST /v1/embeddings"
    case responses = "POST /v1/responses"
    case models = "GET /v1/models"
    case messages = "POST /v1/messages"
    case countTokens = "POST /v1/messages/count_tokens"

    public var dialect: FakeDialect {
        switch self {
        case .messages, .countTokens: .anthropic
        default: .openAI
        }
    }
}

/// The deterministic usage rule, so tests can predict every number FakeLLM reports.
///
/// - Uncached input: `max(1, request body bytes / 4)`.
/// - Cached input: `x-fake-cached-tokens` (default 0), **on top of** the uncached input.
/// - Cache-write input: `x-fake-cache-write-tokens` (default 0, Anthropic messages only), on top;
///   of it, `x-fake-cache-write-1h-tokens` (default 0, at most the writes) are 1-hour writes
///   (`cache_creation.ephemeral_1h_input_tokens`), the rest 5-minute ones.
/// - Content deltas: `x-fake-chunks` (default `chunkCount`), capped by the request's
///   `max_tokens` / `max_completion_tokens` / `max_output_tokens`; one output token each.
///   Hitting the cap ends with `finish_reason "length"` / `stop_reason "max_tokens"` /
///   `status "incomplete"`.
/// - Reasoning: `x-fake-reasoning-tokens` (default 0, OpenAI chat/completions/responses only),
///   on top of the content deltas.
///
/// In the providers' shapes:
/// - OpenAI chat and completions: `prompt_tokens = uncached + cached`,
///   `prompt_tokens_details.cached_tokens = cached`, `completion_tokens = deltas + reasoning`,
///   `completion_tokens_details.reasoning_tokens = reasoning`, `total_tokens` = their sum.
/// - OpenAI responses: `input_tokens = uncached + cached`, `input_tokens_details.cached_tokens`,
///   `output_tokens = deltas + reasoning`, `output_tokens_details.reasoning_tokens`, `total_tokens`.
/// - OpenAI embeddings: `prompt_tokens = total_tokens = uncached` (no cache, no output).
/// - Anthropic messages: `input_tokens = uncached` (excludes the cache),
///   `cache_read_input_tokens = cached`, `cache_creation_input_tokens = cache write`,
///   `output_tokens = deltas`. Streaming: `message_start` carries the input fields and
///   `output_tokens: min(1, deltas)` (as the real API does); the final `message_delta` carries
///   all four fields, cumulative.
/// - Anthropic count_tokens: `input_tokens = uncached` of the count request's own body.
public struct FakeUsage: Sendable, Hashable {
    /// Input billed at the plain price (Anthropic `input_tokens`).
    public var uncachedInputTokens: Int
    public var cachedInputTokens: Int
    public var cacheWriteTokens: Int
    /// Of `cacheWriteTokens`, those written to the 1-hour cache.
    public var cacheWrite1hTokens: Int
    /// Visible content deltas, one token each.
    public var contentTokens: Int
    public var reasoningTokens: Int
    /// Searches a server-side web search tool made (Anthropic and Responses answers).
    public var webSearches: Int
    /// Of `uncachedInputTokens`, audio (chat completions).
    public var audioInputTokens: Int
    /// Audio tokens of the answer, on top of its content (chat completions).
    public var audioOutputTokens: Int
    /// Calls of a file search tool (Responses answers).
    public var fileSearches: Int
    /// The answer stopped at the request's output cap.
    public var hitOutputCap: Bool

    public init(uncachedInputTokens: Int, cachedInputTokens: Int = 0, cacheWriteTokens: Int = 0,
                cacheWrite1hTokens: Int = 0, contentTokens: Int = 0, reasoningTokens: Int = 0,
                webSearches: Int = 0, audioInputTokens: Int = 0, audioOutputTokens: Int = 0,
                fileSearches: Int = 0, hitOutputCap: Bool = false) {
        self.uncachedInputTokens = uncachedInputTokens
        self.cachedInputTokens = cachedInputTokens
        self.cacheWriteTokens = cacheWriteTokens
        self.cacheWrite1hTokens = min(max(0, cacheWrite1hTokens), cacheWriteTokens)
        self.contentTokens = contentTokens
        self.reasoningTokens = reasoningTokens
        self.webSearches = webSearches
        self.audioInputTokens = min(max(0, audioInputTokens), uncachedInputTokens)
        self.audioOutputTokens = audioOutputTokens
        self.fileSearches = fileSearches
        self.hitOutputCap = hitOutputCap
    }

    /// OpenAI `prompt_tokens` / responses `input_tokens` (cached included).
    public var promptTokens: Int { uncachedInputTokens + cachedInputTokens }
    /// OpenAI `completion_tokens` / responses and Anthropic `output_tokens` (reasoning and audio
    /// included).
    public var outputTokens: Int { contentTokens + reasoningTokens + audioOutputTokens }
    /// OpenAI `total_tokens`.
    public var totalTokens: Int { uncachedInputTokens + cachedInputTokens + cacheWriteTokens + outputTokens }

    /// What FakeLLM reports for a request on `route` with a body of `requestBodyBytes` bytes.
    public static func expected(route: FakeRoute, requestBodyBytes: Int, chunks: Int = 8,
                                maxOutputTokens: Int? = nil, cachedTokens: Int = 0,
                                cacheWriteTokens: Int = 0, cacheWrite1hTokens: Int = 0,
                                reasoningTokens: Int = 0, webSearches: Int = 0,
                                audioInputTokens: Int = 0, audioOutputTokens: Int = 0,
                                fileSearches: Int = 0) -> FakeUsage {
        let uncached = max(1, requestBodyBytes / 4)
        let deltas = maxOutputTokens.map { min(chunks, max(0, $0)) } ?? chunks
        let capped = deltas < chunks
        switch route {
        case .chatCompletions:
            return FakeUsage(uncachedInputTokens: uncached + audioInputTokens, cachedInputTokens: cachedTokens,
                             contentTokens: deltas, reasoningTokens: reasoningTokens,
                             audioInputTokens: audioInputTokens, audioOutputTokens: audioOutputTokens,
                             hitOutputCap: capped)
        case .completions:
            return FakeUsage(uncachedInputTokens: uncached, cachedInputTokens: cachedTokens,
                             contentTokens: deltas, reasoningTokens: reasoningTokens, hitOutputCap: capped)
        case .responses:
            return FakeUsage(uncachedInputTokens: uncached, cachedInputTokens: cachedTokens,
                             contentTokens: deltas, reasoningTokens: reasoningTokens, webSearches: webSearches,
                             fileSearches: fileSearches, hitOutputCap: capped)
        case .messages:
            return FakeUsage(uncachedInputTokens: uncached, cachedInputTokens: cachedTokens,
                             cacheWriteTokens: cacheWriteTokens, cacheWrite1hTokens: cacheWrite1hTokens,
                             contentTokens: deltas, webSearches: webSearches, hitOutputCap: capped)
        case .embeddings, .countTokens:
            return FakeUsage(uncachedInputTokens: uncached)
        case .models:
            return FakeUsage(uncachedInputTokens: 0)
        }
    }

    /// What FakeLLM reported (or would report) for a recorded exchange, from its request's
    /// headers and body; `defaultChunks` is the server's `chunkCount`. Nil for unknown routes.
    public static func expected(for exchange: FakeExchange, defaultChunks: Int = 8) -> FakeUsage? {
        guard let route = exchange.route else { return nil }
        var knobs = RequestKnobs(defaults: FakeLLMConfiguration(chunkCount: defaultChunks))
        for (name, value) in exchange.requestHeaders { knobs.apply(name: name, value: value) }
        return expected(route: route, requestBodyBytes: exchange.requestBody.count,
                        knobs: knobs, peek: RequestPeek(exchange.requestBody))
    }

    static func expected(route: FakeRoute, requestBodyBytes: Int, knobs: RequestKnobs,
                         peek: RequestPeek) -> FakeUsage {
        expected(route: route, requestBodyBytes: requestBodyBytes, chunks: knobs.chunks,
                 maxOutputTokens: peek.maxOutputTokens, cachedTokens: knobs.cachedTokens,
                 cacheWriteTokens: knobs.cacheWriteTokens, cacheWrite1hTokens: knobs.cacheWrite1hTokens,
                 reasoningTokens: knobs.reasoningTokens, webSearches: knobs.webSearches,
                 audioInputTokens: knobs.audioInputTokens, audioOutputTokens: knobs.audioOutputTokens,
                 fileSearches: knobs.fileSearches)
    }
}

/// The deterministic text of an answer: delta `i` is `FakeText.delta(i)`, cycling through a
/// short sentence, so the whole content of `n` deltas is `FakeText.content(deltas: n)`.
public enum FakeText {
    static let words = ["Hello", " from", " FakeLLM", ":", " one", " token", " per", " chunk",
                        ",", " nothing", " more", " and", " nothing", " less", ".", "\n"]
    /// JSON-escaped forms, precomputed for the hot path.
    static let escapedWords = words.map(jsonEscaped)

    public static func delta(_ index: Int) -> String { words[index % words.count] }

    public static func content(deltas: Int) -> String {
        (0..<max(0, deltas)).map(delta).joined()
    }

    static func escapedContent(deltas: Int) -> String {
        var text = ""
        text.reserveCapacity(deltas * 6)
        for index in 0..<max(0, deltas) { text += escapedWords[index % escapedWords.count] }
        return text
    }
}

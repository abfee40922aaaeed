/// A model's per-search fees, by the key that names them in prices.yaml.
public struct SearchFees: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let webSearch = SearchFees(rawValue: 1)
    public static let webSearchPreview = SearchFees(rawValue: 2)
    public static let fileSearch = SearchFees(rawValue: 4)
}

/// Which of a model's dearer prices a call's tokens may be charged at, as its request shows it:
/// what its worst case (`ModelPrice.worstCase`) must price them at.
public struct TokenKinds: Sendable, Hashable {
    /// The call asks for prompt caching, so each prompt token may be billed as a cache write
    /// (Anthropic's 5-minute or 1-hour), the dearer of those and the input price.
    public var writesPromptCache: Bool
    /// Of the prompt, the tokens sent as audio (at the audio input price).
    public var audioInputTokens: Int
    /// The call asks for an audio answer, so each output token may be audio.
    public var audioAnswer: Bool
    /// Searches its web search tool may make (`RequestPeek.reservedWebSearches`), a fee each.
    public var webSearches: Int
    /// Calls its file search tool may make (`RequestPeek.reservedFileSearches`), a fee each.
    public var fileSearches: Int
    /// Its web search tools: OpenAI's older preview one (its searches may cost that tool's fee,
    /// `ModelPrice.withSearchFee`), and a current one.
    public var previewWebSearch: Bool
    public var currentWebSearch: Bool
    /// At most this many web and file searches in all (`RequestPeek.sharedToolCallLimit`).
    public var sharedToolCalls: Int?

    public init(writesPromptCache: Bool = false, audioInputTokens: Int = 0, audioAnswer: Bool = false,
                webSearches: Int = 0, fileSearches: Int = 0, previewWebSearch: Bool = false, currentWebSearch: Bool = false,
                sharedToolCalls: Int? = nil) {
        self.writesPromptCache = writesPromptCache
        self.audioInputTokens = audioInputTokens
        self.audioAnswer = audioAnswer
        self.webSearches = webSearches
        self.fileSearches = fileSearches
        self.previewWebSearch = previewWebSearch
        self.currentWebSearch = currentWebSearch
        self.sharedToolCalls = sharedToolCalls
    }
}

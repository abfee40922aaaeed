import NIOCore

/// Why a request body was refused, with a message fit for the client (it names the field).
public enum RequestPeekError: Error, Sendable, Hashable, CustomStringConvertible {
    case emptyBody
    case malformedJSON(offset: Int, problem: String)
    case notAnObject
    /// `requirement` completes "field 'x' ...", e.g. "must be a string".
    case invalidField(name: String, requirement: String)
    /// A field tokenctl reads appears twice; refused because parsers disagree on which copy wins.
    case duplicateField(name: String)
    case missingField(name: String)

    /// The offending field as a dotted path (`stream_options.include_usage`), if any.
    public var field: String? {
        switch self {
        case .invalidField(let name, _), .duplicateField(let name), .missingField(let name): return name
        case .emptyBody, .malformedJSON, .notAnObject: return nil
        }
    }

    public var message: String {
        switch self {
        case .emptyBody: return "request body is empty"
        case .malformedJSON(let offset, let problem): return "malformed JSON at byte \(offset): \(problem)"
        case .notAnObject: return "request body must be a JSON object"
        case .invalidField(let name, let requirement): return "field '\(name)' \(requirement)"
        case .duplicateField(let name): return "field '\(name)' appears more than once"
        case .missingField(let name): return "field '\(name)' is required"
        }
    }

    public var description: String { message }
}

/// What admission needs from a request body, read in one validating pass (no Foundation).
///
/// The body must be well-formed JSON whose top level is an object. Only top-level fields count,
/// plus `stream_options.include_usage`, `metadata.user_id` and `thinking`; JSON `null` reads as absent.
public struct RequestPeek: Sendable, Hashable {
    public var model: String?
    public var stream = false
    /// `stream_options.include_usage`; nil when absent or null.
    public var includeUsage: Bool?
    public var maxTokens: Int?
    public var maxCompletionTokens: Int?
    public var maxOutputTokens: Int?
    public var user: String?
    /// Anthropic's `metadata.user_id` (OpenAI metadata may carry one too).
    public var metadataUserID: String?
    /// OpenAI's `n` (choices generated) and legacy completions' `best_of` (candidates generated,
    /// each billed); nil when absent or null.
    public var choices: Int?
    public var bestOf: Int?
    /// Legacy completions' `prompt` given as a list: one prompt per element, each answered
    /// `n` / `best_of` times (a list of token ids is one prompt). Nil when not a list.
    public var prompts: Int?
    /// The `service_tier` asked for (OpenAI: `auto`, `default`, `flex`, `priority`, …), which
    /// may be priced apart.
    public var serviceTier: String?
    /// Anthropic's `speed` (`fast`: fast mode, priced apart).
    public var speed: String?
    /// Anthropic's `inference_geo` (`us`: run in the US only, priced apart; `InferenceGeo`).
    public var inferenceGeo: String?
    /// The request gives a server-side web search tool (a `tools` entry whose type starts with
    /// `web_search`: Anthropic's `web_search_20250305`, the Responses API's `web_search` and
    /// `web_search_preview`), each search billed a fee; with the most searches its `max_uses`
    /// allow (nil when some such tool has none).
    public internal(set) var webSearchTool = false
    public internal(set) var webSearchMaxUses: Int?
    /// Of those, OpenAI's older `web_search_preview` tool is given, and a current one is: the
    /// fee of a search may be the preview tool's (`ModelPrice.webSearchPreview`).
    public internal(set) var webSearchPreviewTool = false
    public internal(set) var webSearchCurrentTool = false
    /// The request gives the Responses API's `file_search` tool, each of whose calls is billed a fee.
    public internal(set) var fileSearchTool = false
    /// The request gives the Responses API's `image_generation` tool, whose images are billed
    /// apart from the usage the answer reports (per image, by the image model the tool picks).
    public internal(set) var imageGenerationTool = false
    /// The Responses API's `max_tool_calls`: built-in tool calls, searches among them, at most.
    public var maxToolCalls: Int?
    /// Size of the body; the prompt-size figure admission estimates from.
    public var bodyBytes = 0
    /// Base64 images in the body (`InlineMedia`): estimated per image, not per byte.
    public internal(set) var inlineImages = 0
    public internal(set) var inlineImageBytes = 0
    /// Base64 audio in the body (`InlineMedia`): estimated by how long it plays, not per byte.
    public internal(set) var inlineAudioBytes = 0
    public internal(set) var inlineAudioSeconds = 0.0
    /// The request asks for an audio answer (OpenAI's `audio` parameter, which `modalities:
    /// ["audio"]` requires): its output may be audio tokens, priced above text.
    public internal(set) var asksAudioAnswer = false
    /// The body names a `cache_control` (Anthropic prompt caching, at the top or on a block):
    /// its prompt may be billed as a cache write, above the input price.
    public internal(set) var asksPromptCache = false
    /// Anthropic's `thinking.type` (`enabled`, `adaptive`, `disabled`) and `thinking.budget_tokens`
    /// (extended thinking's budget, which must stay under `max_tokens`: `thinkingUnderCap`).
    /// Read leniently: a value of another type is the provider's to refuse.
    public internal(set) var thinkingType: String?
    public internal(set) var thinkingBudget: Int?

    /// Searches a call with a web search tool and no limit is reserved for (a search costs $0.01;
    /// a tool left to itself makes a few, a deep research call dozens).
    public static let searchesWithoutLimit = 10

    /// The searches the call's reservation holds: its tool's limit (`max_tool_calls` only where
    /// the Responses API reads it), else `searchesWithoutLimit`; none for a token count.
    public func reservedWebSearches(on endpoint: Endpoint) -> Int {
        guard webSearchTool, endpoint != .countTokens else { return 0 }
        let toolCalls = endpoint == .responses ? maxToolCalls : nil
        return [webSearchMaxUses, toolCalls].compactMap { $0 }.min() ?? Self.searchesWithoutLimit
    }

    /// The file search calls the call's reservation holds: `max_tool_calls`, else
    /// `searchesWithoutLimit`; none but on `/v1/responses`, the tool's only endpoint.
    public func reservedFileSearches(on endpoint: Endpoint) -> Int {
        guard fileSearchTool, endpoint == .responses else { return 0 }
        return maxToolCalls ?? Self.searchesWithoutLimit
    }

    /// The Responses API's `max_tool_calls` when the request gives both a web search and a file
    /// search tool: it bounds their calls together, not each's.
    public func sharedToolCallLimit(on endpoint: Endpoint) -> Int? {
        endpoint == .responses && webSearchTool && fileSearchTool ? maxToolCalls : nil
    }

    /// How many answers the request has generated, each up to its output limit: `n` on chat
    /// and completions, `best_of` on completions (the larger), else 1.
    public func generatedAnswers(on endpoint: Endpoint) -> Int {
        switch endpoint {
        case .chatCompletions: return Swift.max(1, choices ?? 1)
        case .completions: return Swift.max(1, choices ?? 1, bestOf ?? 1) * Swift.max(1, prompts ?? 1)
        case .embeddings, .responses, .messages, .countTokens: return 1
        }
    }

    /// Where `withIncludeUsage` and `withOutputCap` edit; offsets into the body this peek read.
    struct Anchors: Sendable, Hashable {
        var objectStart = 0
        var objectIsEmpty = true
        /// The value of `model` (a string), for `withModel`.
        var model: Range<Int>?
        /// The value of `stream_options` (object or `null`).
        var streamOptions: Range<Int>?
        var streamOptionsIsNull = false
        var streamOptionsIsEmpty = true
        /// The value of `stream_options.include_usage` (`true`, `false` or `null`).
        var includeUsage: Range<Int>?
        /// The values of the top-level output caps (a number or `null`).
        var maxTokens: Range<Int>?
        var maxCompletionTokens: Range<Int>?
        var maxOutputTokens: Range<Int>?
        /// The value of `thinking.budget_tokens` (a number).
        var thinkingBudget: Range<Int>?
    }
    var anchors = Anchors()

    /// Output caps above this are refused: no model comes near, so a larger value is a mistake.
    public static let maxTokensLimit = 1_000_000_000

    /// The output cap the caller set, whichever field carries it; the largest if several do,
    /// so a reservation sized from it is never too small.
    public var outputCap: Int? {
        let largest = Swift.max(maxTokens ?? -1, maxCompletionTokens ?? -1, maxOutputTokens ?? -1)
        return largest >= 0 ? largest : nil
    }

    /// The model, or the error a client should get when it is missing.
    public func requireModel() throws(RequestPeekError) -> String {
        guard let model else { throw .missingField(name: "model") }
        return model
    }

    public init(body: UnsafeRawBufferPointer) throws(RequestPeekError) {
        bodyBytes = body.count
        var reader = RequestPeekReader()
        do {
            try reader.read(body, into: &self)
        } catch {
            throw RequestPeekError.malformedJSON(offset: error.offset, problem: error.expected)
        }
        if let problem = reader.problem { throw problem }
    }

    /// The model a body names though another field tokenctl reads is invalid (for the refused
    /// call's row), nil when the body is not a JSON object or its `model` is the problem; and
    /// whether it asks for a stream.
    public static func modelAndStream(in body: ByteBuffer) -> (model: String?, stream: Bool) {
        body.withUnsafeReadableBytes { bytes in
            var peek = RequestPeek(bodyBytes: bytes.count)
            var reader = RequestPeekReader()
            guard (try? reader.read(bytes, into: &peek)) != nil else { return (nil, false) }
            return (reader.modelTroubled ? nil : peek.model, peek.stream)
        }
    }

    private init(bodyBytes: Int) {
        self.bodyBytes = bodyBytes
    }

    public init(body: [UInt8]) throws(RequestPeekError) {
        let result = body.withUnsafeBytes { bytes in Result { () throws(RequestPeekError) in try RequestPeek(body: bytes) } }
        self = try result.get()
    }

    public init(body: ByteBuffer) throws(RequestPeekError) {
        let result = body.withUnsafeReadableBytes { bytes in Result { () throws(RequestPeekError) in try RequestPeek(body: bytes) } }
        self = try result.get()
    }
}

extension RequestPeek {
    /// The body this peek read with its `model` replaced (a fallback model). Nil when the body
    /// names no model. Everything else is kept byte for byte.
    public func withModel(_ name: String, body: ByteBuffer) -> ByteBuffer? {
        precondition(body.readableBytes == bodyBytes, "withModel needs the body the peek read")
        guard let range = anchors.model else { return nil }
        let bytes = body.readableBytesView
        var out = ByteBuffer()
        out.reserveCapacity(bodyBytes + name.utf8.count + 2)
        out.writeBytes(bytes[bytes.startIndex..<(bytes.startIndex + range.lowerBound)])
        out.writeString(JSONString.literal(name))
        out.writeBytes(bytes[(bytes.startIndex + range.upperBound)...])
        return out
    }
}

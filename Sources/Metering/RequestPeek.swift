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
        var reader = Reader()
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
            var reader = Reader()
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

/// The single pass behind `RequestPeek.init`. Field problems are remembered rather than thrown
/// so the scan still validates the rest; a syntax error anywhere takes precedence.
private struct Reader {
    var problem: RequestPeekError?
    /// Fields met so far, one bit each (a Set would allocate on every request).
    private var seen: UInt32 = 0

    /// The fields read; their raw value is their bit in `seen`.
    enum Field: UInt32 {
        case model = 1, stream = 2, maxTokens = 4, maxCompletionTokens = 8, maxOutputTokens = 16, user = 32
        case streamOptions = 64, includeUsage = 128, metadata = 256, metadataUserID = 512
        case choices = 1024, bestOf = 2048, prompt = 4096, background = 8192, serviceTier = 16384, speed = 32768
        case tools = 65536, maxToolCalls = 131072, inferenceGeo = 262144
        case thinking = 524288, thinkingType = 1048576, thinkingBudget = 2097152

        var name: String {
            switch self {
            case .model: return "model"
            case .stream: return "stream"
            case .maxTokens: return "max_tokens"
            case .maxCompletionTokens: return "max_completion_tokens"
            case .maxOutputTokens: return "max_output_tokens"
            case .user: return "user"
            case .streamOptions: return "stream_options"
            case .includeUsage: return "stream_options.include_usage"
            case .metadata: return "metadata"
            case .metadataUserID: return "metadata.user_id"
            case .choices: return "n"
            case .bestOf: return "best_of"
            case .prompt: return "prompt"
            case .background: return "background"
            case .serviceTier: return "service_tier"
            case .speed: return "speed"
            case .tools: return "tools"
            case .maxToolCalls: return "max_tool_calls"
            case .inferenceGeo: return "inference_geo"
            case .thinking: return "thinking"
            case .thinkingType: return "thinking.type"
            case .thinkingBudget: return "thinking.budget_tokens"
            }
        }
    }

    /// Whether any problem, not only the first, was `model`'s (then no model is trusted).
    var modelTroubled = false

    mutating func note(_ error: RequestPeekError) {
        if problem == nil { problem = error }
        if error.field == "model" { modelTroubled = true }
    }

    /// Records a field; a second sighting is a problem.
    mutating func first(_ field: Field) -> Bool {
        if seen & field.rawValue == 0 { seen |= field.rawValue; return true }
        note(.duplicateField(name: field.name))
        return false
    }

    mutating func read(_ body: UnsafeRawBufferPointer, into peek: inout RequestPeek) throws(JSONSyntaxError) {
        var scanner = JSONScanner(body)
        scanner.skipWhitespace()
        guard let first = scanner.current else {
            note(body.isEmpty ? .emptyBody : .malformedJSON(offset: scanner.index, problem: "unexpected end of input"))
            return
        }
        guard first == UInt8(ascii: "{") else {
            // A valid non-object value is "not an object"; garbage is malformed.
            try scanner.skipValue()
            try scanner.expectEnd()
            note(.notAnObject)
            return
        }
        peek.anchors.objectStart = scanner.index
        try scanner.readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
            peek.anchors.objectIsEmpty = false
            return try topLevel(&s, key, &peek)
        }
        try scanner.expectEnd()
        peek.inlineImages = scanner.inlineMedia.images
        peek.inlineImageBytes = scanner.inlineMedia.imageBytes
        peek.inlineAudioBytes = scanner.inlineMedia.audioBytes
        peek.inlineAudioSeconds = scanner.inlineMedia.audioSeconds
        peek.asksPromptCache = peek.asksPromptCache || scanner.sawCacheControl
    }

    private mutating func topLevel(_ s: inout JSONScanner, _ key: JSONScanner.StringToken,
                                   _ peek: inout RequestPeek) throws(JSONSyntaxError) -> Bool {
        if s.key(key, is: "model") {
            guard first(.model) else { return false }
            let start = s.index
            peek.model = try string(&s, .model, nullable: false)
            peek.anchors.model = start..<s.index
        } else if s.key(key, is: "stream") {
            guard first(.stream) else { return false }
            peek.stream = try bool(&s, .stream) ?? false
        } else if s.key(key, is: "max_tokens") {
            guard first(.maxTokens) else { return false }
            let start = s.index
            peek.maxTokens = try count(&s, .maxTokens)
            peek.anchors.maxTokens = start..<s.index
        } else if s.key(key, is: "max_completion_tokens") {
            guard first(.maxCompletionTokens) else { return false }
            let start = s.index
            peek.maxCompletionTokens = try count(&s, .maxCompletionTokens)
            peek.anchors.maxCompletionTokens = start..<s.index
        } else if s.key(key, is: "max_output_tokens") {
            guard first(.maxOutputTokens) else { return false }
            let start = s.index
            peek.maxOutputTokens = try count(&s, .maxOutputTokens)
            peek.anchors.maxOutputTokens = start..<s.index
        } else if s.key(key, is: "user") {
            guard first(.user) else { return false }
            peek.user = try string(&s, .user, nullable: true)
        } else if s.key(key, is: "stream_options") {
            guard first(.streamOptions) else { return false }
            let start = s.index
            if s.skipNull() {
                peek.anchors.streamOptions = start..<s.index
                peek.anchors.streamOptionsIsNull = true
                return true
            }
            guard s.current == UInt8(ascii: "{") else {
                note(.invalidField(name: Field.streamOptions.name, requirement: "must be an object"))
                return false
            }
            try s.readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
                peek.anchors.streamOptionsIsEmpty = false
                guard s.key(key, is: "include_usage"), first(.includeUsage) else { return false }
                let valueStart = s.index
                peek.includeUsage = try bool(&s, .includeUsage)
                peek.anchors.includeUsage = valueStart..<s.index
                return true
            }
            peek.anchors.streamOptions = start..<s.index
        } else if s.key(key, is: "n") {
            guard first(.choices) else { return false }
            peek.choices = try count(&s, .choices)
        } else if s.key(key, is: "best_of") {
            guard first(.bestOf) else { return false }
            peek.bestOf = try count(&s, .bestOf)
        } else if s.key(key, is: "prompt") {
            // Counted only as a list; a string, or the Responses API's prompt template, is one.
            guard first(.prompt), s.current == UInt8(ascii: "[") else { return false }
            peek.prompts = try s.countPrompts()
        } else if s.key(key, is: "background") {
            guard first(.background) else { return false }
            if try bool(&s, .background) == true {
                note(.invalidField(name: Field.background.name, requirement:
                    "is not supported: a background response runs and is billed after this call returns, where the gateway cannot meter it; call without it (stream instead for a long answer)"))
            }
        } else if s.key(key, is: "service_tier") {
            guard first(.serviceTier) else { return false }
            peek.serviceTier = try string(&s, .serviceTier, nullable: true)
        } else if s.key(key, is: "speed") {
            guard first(.speed) else { return false }
            peek.speed = try string(&s, .speed, nullable: true)
        } else if s.key(key, is: "inference_geo") {
            guard first(.inferenceGeo) else { return false }
            peek.inferenceGeo = try string(&s, .inferenceGeo, nullable: true)
        } else if s.key(key, is: "max_tool_calls") {
            guard first(.maxToolCalls) else { return false }
            peek.maxToolCalls = try count(&s, .maxToolCalls)
        } else if s.key(key, is: "tools") {
            guard first(.tools), s.current == UInt8(ascii: "[") else { return false }
            let searches = try s.readBilledTools()
            peek.webSearchTool = searches.webSearch
            peek.webSearchPreviewTool = searches.preview
            peek.webSearchCurrentTool = searches.current
            peek.fileSearchTool = searches.fileSearch
            peek.imageGenerationTool = searches.imageGeneration
            peek.webSearchMaxUses = searches.maxUses
        } else if s.key(key, is: "thinking") {
            guard first(.thinking), s.current == UInt8(ascii: "{") else { return false }
            try s.readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
                if s.key(key, is: "type") {
                    guard first(.thinkingType), s.current == UInt8(ascii: "\"") else { return false }
                    peek.thinkingType = s.string(try s.scanString())
                    return true
                }
                guard s.key(key, is: "budget_tokens"), first(.thinkingBudget),
                      let c = s.current, JSONScanner.isDigit(c) else { return false }
                let start = s.index
                if case .value(let v) = s.integer(try s.scanNumber(), limit: RequestPeek.maxTokensLimit) {
                    peek.thinkingBudget = v
                    peek.anchors.thinkingBudget = start..<s.index
                }
                return true
            }
        } else if s.key(key, is: "metadata") {
            guard first(.metadata) else { return false }
            if s.skipNull() { return true }
            guard s.current == UInt8(ascii: "{") else {
                note(.invalidField(name: Field.metadata.name, requirement: "must be an object"))
                return false
            }
            try s.readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
                guard s.key(key, is: "user_id"), first(.metadataUserID) else { return false }
                peek.metadataUserID = try string(&s, .metadataUserID, nullable: true)
                return true
            }
        } else {
            // Automatic caching names it at the top (its value is skipped, not read).
            if s.key(key, is: "cache_control") { peek.asksPromptCache = true }
            if s.key(key, is: "audio"), s.current == UInt8(ascii: "{") { peek.asksAudioAnswer = true }
            return false
        }
        return true
    }

    // Value readers: on a wrong type they note the problem and skip the value.

    private mutating func string(_ s: inout JSONScanner, _ field: Field, nullable: Bool) throws(JSONSyntaxError) -> String? {
        if nullable, s.skipNull() { return nil }
        guard s.current == UInt8(ascii: "\"") else {
            note(.invalidField(name: field.name, requirement: "must be a string"))
            try s.skipValue()
            return nil
        }
        return s.string(try s.scanString())
    }

    private mutating func bool(_ s: inout JSONScanner, _ field: Field) throws(JSONSyntaxError) -> Bool? {
        switch s.current {
        case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            switch try s.scanLiteral() {
            case .true: return true
            case .false: return false
            case .null: return nil
            }
        default:
            note(.invalidField(name: field.name, requirement: "must be a boolean"))
            try s.skipValue()
            return nil
        }
    }

    private mutating func count(_ s: inout JSONScanner, _ field: Field) throws(JSONSyntaxError) -> Int? {
        if s.skipNull() { return nil }
        guard let c = s.current, c == UInt8(ascii: "-") || JSONScanner.isDigit(c) else {
            note(.invalidField(name: field.name, requirement: "must be a non-negative integer"))
            try s.skipValue()
            return nil
        }
        switch s.integer(try s.scanNumber(), limit: RequestPeek.maxTokensLimit) {
        case .value(let v): return v
        case .negative, .fractional:
            note(.invalidField(name: field.name, requirement: "must be a non-negative integer"))
        case .tooLarge:
            note(.invalidField(name: field.name, requirement: "must be at most \(RequestPeek.maxTokensLimit)"))
        }
        return nil
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

import NIOCore

/// What a complete response body says about the call.
public struct ResponseReading: Sendable, Hashable {
    /// Normalised usage (see `Usage`); nil when the body carries none or carries nonsense.
    public var usage: Usage?
    /// The model the provider says served the call.
    public var servedModel: String?
    /// The provider's error message (`error.message`), at most 500 characters, for the ledger.
    public var providerErrorMessage: String?
    /// The body is one complete, well-formed JSON value.
    public var isCompleteJSON: Bool
    /// The priced service tier the answer says served the call (`ServiceTier`): `.some(nil)` for
    /// the standard tier, nil when the answer does not say.
    public var servedTier: String??
    /// Where the answer says the call ran (Anthropic's `usage.inference_geo`: `us`, `global`,
    /// `not_available`), nil when it does not say (`InferenceGeo`).
    public var servedGeo: String?
    /// The usage has no output count at all (not an explicit 0, which an echo-only completion
    /// rightly reports).
    public var outputCountMissing = false

    public init(usage: Usage? = nil, servedModel: String? = nil, providerErrorMessage: String? = nil,
                isCompleteJSON: Bool = false) {
        self.usage = usage
        self.servedModel = servedModel
        self.providerErrorMessage = providerErrorMessage
        self.isCompleteJSON = isCompleteJSON
    }
}

/// Reads usage from complete (non-streamed) JSON response bodies, per endpoint.
///
/// Shapes (all top-level `model`, `usage`, `error`):
/// - OpenAI chat.completions / completions: `usage.prompt_tokens` (includes
///   `prompt_tokens_details.cached_tokens` and `.audio_tokens`), `usage.completion_tokens`
///   (includes `completion_tokens_details.reasoning_tokens` and `.audio_tokens`). Embeddings:
///   `usage.prompt_tokens` only.
/// - OpenAI responses: `usage.input_tokens` (includes `input_tokens_details.cached_tokens`),
///   `usage.output_tokens` (includes `output_tokens_details.reasoning_tokens`).
/// - Anthropic messages: `usage.input_tokens` (excludes cache), `cache_read_input_tokens`,
///   `cache_creation_input_tokens` (of which `cache_creation.ephemeral_1h_input_tokens` are
///   1-hour writes), `output_tokens`.
/// - Anthropic count_tokens is free: `Usage.zero`.
/// Errors (status >= 400) carry no usage; their message is `error.message`, or the body's text
/// when it has none (an HTML page from a load balancer, say).
public enum ResponseUsage {
    public static let errorMessageLimit = 500

    public static func read(endpoint: Endpoint, status: Int, body: UnsafeRawBufferPointer) -> ResponseReading {
        var scanner = JSONScanner(body)
        var fields: ResponseFields?
        do {
            let read = try scanner.readResponseFields(dialect: endpoint.dialect)
            try scanner.expectEnd()
            fields = read
        } catch {
            fields = nil
        }
        var reading = ResponseReading(isCompleteJSON: fields != nil)
        reading.servedModel = fields?.model
        reading.servedTier = fields?.servedTier(endpoint.dialect) ?? nil
        reading.servedGeo = fields?.usage?.inferenceGeo
        if status >= 400 {
            reading.providerErrorMessage = truncated(fields?.errorMessage) ?? bodyText(body)
            return reading
        }
        reading.providerErrorMessage = truncated(fields?.errorMessage)
        if endpoint == .countTokens {
            reading.usage = fields != nil ? .zero : nil
        } else {
            let reported = fields?.usageWithSearches
            reading.usage = reported?.normalised(endpoint.dialect)
            reading.outputCountMissing = reading.usage != nil && reported?.output == nil
        }
        return reading
    }

    public static func read(endpoint: Endpoint, status: Int, body: [UInt8]) -> ResponseReading {
        body.withUnsafeBytes { read(endpoint: endpoint, status: status, body: $0) }
    }

    public static func read(endpoint: Endpoint, status: Int, body: ByteBuffer) -> ResponseReading {
        body.withUnsafeReadableBytes { read(endpoint: endpoint, status: status, body: $0) }
    }

    static func truncated(_ message: String?) -> String? {
        guard let message, !message.isEmpty else { return nil }
        return message.count <= errorMessageLimit ? message : String(message.prefix(errorMessageLimit))
    }

    /// A non-JSON (or message-less) error body as text, trimmed and truncated.
    private static func bodyText(_ body: UnsafeRawBufferPointer) -> String? {
        // Decode at most a few bytes per character allowed; the rest cannot be shown anyway.
        let prefix = UnsafeRawBufferPointer(rebasing: body[..<min(body.count, errorMessageLimit * 4)])
        let text = String(decoding: prefix, as: UTF8.self)
        let trimmed = text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed()
        return truncated(String(trimmed))
    }
}

/// Token counts as the provider reported them, before normalisation. Nil means "not given".
struct ReportedUsage: Sendable, Hashable {
    /// Counts above this are treated as garbage: no single call comes near.
    static let countLimit = 100_000_000

    var input: Int?
    var cached: Int?
    var cacheWrite: Int?
    /// Of `cacheWrite`, the 1-hour writes (Anthropic `cache_creation.ephemeral_1h_input_tokens`).
    var cacheWrite1h: Int?
    var output: Int?
    var reasoning: Int?
    /// Web searches: Anthropic's `server_tool_use.web_search_requests`, or the Responses answer's
    /// `web_search_call` items (`ResponseFields.searchCalls`).
    var webSearches: Int?
    /// File search calls: the Responses answer's `file_search_call` items.
    var fileSearches: Int?
    /// Of `input` and `output`, the audio tokens (OpenAI's `audio_tokens` in the details).
    var audioInput: Int?
    var audioOutput: Int?
    /// Anthropic's `speed` (`fast`: fast mode), as the usage reports it.
    var speed: String?
    /// Anthropic's `inference_geo`: where the call ran (`InferenceGeo`).
    var inferenceGeo: String?
    /// A count was negative, fractional, absurd or not a number: the usage cannot be trusted.
    var invalid = false

    /// Fields the newer report gives replace ours (Anthropic's cumulative `message_delta`).
    mutating func merge(_ newer: ReportedUsage) {
        input = newer.input ?? input
        cached = newer.cached ?? cached
        cacheWrite = newer.cacheWrite ?? cacheWrite
        cacheWrite1h = newer.cacheWrite1h ?? cacheWrite1h
        output = newer.output ?? output
        reasoning = newer.reasoning ?? reasoning
        webSearches = newer.webSearches ?? webSearches
        fileSearches = newer.fileSearches ?? fileSearches
        audioInput = newer.audioInput ?? audioInput
        audioOutput = newer.audioOutput ?? audioOutput
        speed = newer.speed ?? speed
        inferenceGeo = newer.inferenceGeo ?? inferenceGeo
        invalid = invalid || newer.invalid
    }

    /// Per the rules in `Usage`: OpenAI input counts include cached tokens, Anthropic's do not.
    func normalised(_ dialect: Dialect) -> Usage? {
        guard !invalid, input != nil || output != nil || cached != nil || cacheWrite != nil else { return nil }
        let output = output ?? 0
        let reasoning = min(reasoning ?? 0, output)
        let cached = cached ?? 0
        switch dialect {
        case .openai:
            let plain = (input ?? 0) - cached
            guard plain >= 0 else { return nil }
            // Audio read from the cache is in `cached` (at the cached price): at most the rest is
            // audio at the audio price.
            return Usage(inputTokens: plain, cachedInputTokens: cached, cacheWriteTokens: 0,
                         outputTokens: output, reasoningTokens: reasoning, webSearches: webSearches ?? 0,
                         audioInputTokens: min(audioInput ?? 0, plain), audioOutputTokens: min(audioOutput ?? 0, output),
                         fileSearches: fileSearches ?? 0)
        case .anthropic:
            let cacheWrite = cacheWrite ?? 0
            return Usage(inputTokens: input ?? 0, cachedInputTokens: cached, cacheWriteTokens: cacheWrite,
                         cacheWrite1hTokens: min(cacheWrite1h ?? 0, cacheWrite), outputTokens: output,
                         reasoningTokens: reasoning, webSearches: webSearches ?? 0)
        }
    }
}

/// The members of a response body or stream event that metering reads.
struct ResponseFields {
    var type: String?
    var model: String?
    var usage: ReportedUsage?
    var errorMessage: String?
    /// OpenAI's `service_tier`: the tier that served the call.
    var serviceTier: String?
    /// The `web_search_call` and `file_search_call` items of a Responses answer's `output`
    /// (each a billed call of its tool).
    var searchCalls = SearchCalls()
    /// A top-level `"choices": []` (OpenAI's include_usage chunk).
    var choicesEmpty = false

    /// Fills in what a wrapped object (`response`, `message`) said.
    mutating func adopt(_ inner: ResponseFields) {
        model = inner.model ?? model
        usage = inner.usage ?? usage
        errorMessage = inner.errorMessage ?? errorMessage
        serviceTier = inner.serviceTier ?? serviceTier
        searchCalls.web += inner.searchCalls.web
        searchCalls.file += inner.searchCalls.file
    }

    /// The usage with the Responses answer's web and file searches counted in.
    var usageWithSearches: ReportedUsage? {
        guard var usage, searchCalls.web > 0 || searchCalls.file > 0 else { return usage }
        if searchCalls.web > 0 { usage.webSearches = searchCalls.web }
        if searchCalls.file > 0 { usage.fileSearches = searchCalls.file }
        return usage
    }

    /// The priced tier these fields say served the call: OpenAI's `service_tier`; Anthropic's
    /// `usage.speed`. See `ResponseReading.servedTier`.
    func servedTier(_ dialect: Dialect) -> String?? {
        ResponseFields.servedTier(dialect, serviceTier: serviceTier, usage: usage)
    }

    static func servedTier(_ dialect: Dialect, serviceTier: String?, usage: ReportedUsage?) -> String?? {
        switch dialect {
        case .openai:
            return serviceTier.map(ServiceTier.named)
        case .anthropic:
            // Not `usage.service_tier`: Anthropic's Priority Tier is billed by commitment, not
            // per token, so it is no tier of prices.yaml.
            guard let speed = usage?.speed else { return nil }
            return .some(ServiceTier.named(speed))
        }
    }
}

extension JSONScanner {
    /// Reads the object at the cursor: `type`, `model`, `usage`, `error` and `choices`, and
    /// one level into `response` (OpenAI responses events) or `message` (Anthropic
    /// `message_start`). A top-level string `message` is an OpenAI responses `error` event's text.
    mutating func readResponseFields(dialect: Dialect, nested: Bool = false) throws(JSONSyntaxError) -> ResponseFields {
        var fields = ResponseFields()
        try readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
            if s.key(key, is: "usage") {
                fields.usage = try s.readUsage(dialect)
            } else if s.key(key, is: "model") {
                guard s.current == UInt8(ascii: "\"") else { return false }
                fields.model = s.string(try s.scanString())
            } else if s.key(key, is: "type") {
                guard s.current == UInt8(ascii: "\"") else { return false }
                fields.type = s.string(try s.scanString())
            } else if s.key(key, is: "error") {
                fields.errorMessage = try s.readErrorMessage() ?? fields.errorMessage
            } else if s.key(key, is: "choices") {
                fields.choicesEmpty = s.skipEmptyArray()
                return fields.choicesEmpty
            } else if s.key(key, is: "service_tier") {
                guard s.current == UInt8(ascii: "\"") else { return false }
                let tier = try s.scanString()
                // Most answers say "default": no string made for it.
                fields.serviceTier = s.key(tier, is: "default") ? "default" : s.string(tier)
            } else if dialect == .openai, s.key(key, is: "output") {
                guard s.current == UInt8(ascii: "[") else { return false }
                (fields.searchCalls.web, fields.searchCalls.file) = try s.countItems(ofTypes: "web_search_call", "file_search_call")
            } else if !nested, s.key(key, is: "response") || s.key(key, is: "message") {
                if s.current == UInt8(ascii: "{") {
                    fields.adopt(try s.readResponseFields(dialect: dialect, nested: true))
                } else if s.current == UInt8(ascii: "\"") {
                    let text = s.string(try s.scanString())
                    fields.errorMessage = fields.errorMessage ?? text
                } else {
                    return false
                }
            } else {
                return false
            }
            return true
        }
        return fields
    }

    /// The objects of the array at the cursor whose `type` is `first`, and those whose `type` is
    /// `second` (a Responses `output`).
    mutating func countItems(ofTypes first: StaticString, _ second: StaticString) throws(JSONSyntaxError) -> (Int, Int) {
        var counts = (0, 0)
        try readArray { (s: inout JSONScanner) throws(JSONSyntaxError) -> Bool in
            guard s.current == UInt8(ascii: "{") else { return false }
            try s.readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
                guard s.key(key, is: "type"), s.current == UInt8(ascii: "\"") else { return false }
                let token = try s.scanString()
                if s.key(token, is: first) { counts.0 += 1 } else if s.key(token, is: second) { counts.1 += 1 }
                return true
            }
            return true
        }
        return counts
    }

    /// Whether the object at the cursor (an Anthropic `content_block_start`) has a
    /// `content_block` of type `web_search_tool_result` whose `content` is an array of results.
    mutating func readWebSearchResultsStart() throws(JSONSyntaxError) -> Bool {
        var results = false
        try readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
            guard s.key(key, is: "content_block"), s.current == UInt8(ascii: "{") else { return false }
            var isResult = false, holdsArray = false
            try s.readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
                if s.key(key, is: "type"), s.current == UInt8(ascii: "\"") {
                    isResult = s.key(try s.scanString(), is: "web_search_tool_result")
                    return true
                }
                if s.key(key, is: "content") { holdsArray = s.current == UInt8(ascii: "[") }
                return false
            }
            results = isResult && holdsArray
            return true
        }
        return results
    }

    /// `error`: an object with a `message` string, or a bare string; anything else is nil.
    mutating func readErrorMessage() throws(JSONSyntaxError) -> String? {
        if current == UInt8(ascii: "\"") { return string(try scanString()) }
        guard current == UInt8(ascii: "{") else { try skipValue(); return nil }
        var message: String?
        try readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
            guard s.key(key, is: "message"), s.current == UInt8(ascii: "\"") else { return false }
            message = s.string(try s.scanString())
            return true
        }
        return message
    }

    /// A `usage` value in the dialect's shape; nil for `null` or a non-object.
    mutating func readUsage(_ dialect: Dialect) throws(JSONSyntaxError) -> ReportedUsage? {
        guard current == UInt8(ascii: "{") else { try skipValue(); return nil }
        var usage = ReportedUsage()
        try readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
            switch dialect {
            case .openai:
                if s.key(key, is: "prompt_tokens") || s.key(key, is: "input_tokens") {
                    usage.input = try s.readCount(&usage.invalid)
                } else if s.key(key, is: "completion_tokens") || s.key(key, is: "output_tokens") {
                    usage.output = try s.readCount(&usage.invalid)
                } else if s.key(key, is: "prompt_tokens_details") || s.key(key, is: "input_tokens_details") {
                    let (cached, audio) = try s.readDetails("cached_tokens", "audio_tokens", &usage.invalid)
                    usage.cached = cached ?? usage.cached
                    usage.audioInput = audio ?? usage.audioInput
                } else if s.key(key, is: "completion_tokens_details") || s.key(key, is: "output_tokens_details") {
                    let (reasoning, audio) = try s.readDetails("reasoning_tokens", "audio_tokens", &usage.invalid)
                    usage.reasoning = reasoning ?? usage.reasoning
                    usage.audioOutput = audio ?? usage.audioOutput
                } else {
                    return false
                }
            case .anthropic:
                if s.key(key, is: "input_tokens") {
                    usage.input = try s.readCount(&usage.invalid)
                } else if s.key(key, is: "cache_read_input_tokens") {
                    usage.cached = try s.readCount(&usage.invalid)
                } else if s.key(key, is: "cache_creation_input_tokens") {
                    usage.cacheWrite = try s.readCount(&usage.invalid)
                } else if s.key(key, is: "cache_creation") {
                    usage.cacheWrite1h = try s.readDetail("ephemeral_1h_input_tokens", &usage.invalid) ?? usage.cacheWrite1h
                } else if s.key(key, is: "output_tokens") {
                    usage.output = try s.readCount(&usage.invalid)
                } else if s.key(key, is: "server_tool_use") {
                    usage.webSearches = try s.readDetail("web_search_requests", &usage.invalid) ?? usage.webSearches
                } else if s.key(key, is: "speed"), s.current == UInt8(ascii: "\"") {
                    usage.speed = s.string(try s.scanString())
                } else if s.key(key, is: "inference_geo"), s.current == UInt8(ascii: "\"") {
                    usage.inferenceGeo = s.string(try s.scanString())
                } else {
                    return false
                }
            }
            return true
        }
        return usage
    }

    /// One member of a `*_details` object.
    private mutating func readDetail(_ name: StaticString, _ invalid: inout Bool) throws(JSONSyntaxError) -> Int? {
        try readDetails(name, nil, &invalid).0
    }

    /// One or two members of a `*_details` object.
    private mutating func readDetails(_ first: StaticString, _ second: StaticString?,
                                      _ invalid: inout Bool) throws(JSONSyntaxError) -> (Int?, Int?) {
        guard current == UInt8(ascii: "{") else { try skipValue(); return (nil, nil) }
        var values: (Int?, Int?)
        try readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
            if s.key(key, is: first) {
                values.0 = try s.readCount(&invalid)
            } else if let second, s.key(key, is: second) {
                values.1 = try s.readCount(&invalid)
            } else {
                return false
            }
            return true
        }
        return values
    }

    /// A token count: nil for `null`; sets `invalid` for anything but an integer in range.
    private mutating func readCount(_ invalid: inout Bool) throws(JSONSyntaxError) -> Int? {
        if skipNull() { return nil }
        guard let c = current, c == UInt8(ascii: "-") || JSONScanner.isDigit(c) else {
            invalid = true
            try skipValue()
            return nil
        }
        guard case .value(let count) = integer(try scanNumber(), limit: ReportedUsage.countLimit) else {
            invalid = true
            return nil
        }
        return count
    }
}

/// The single pass behind `RequestPeek.init`. Field problems are remembered rather than thrown
/// so the scan still validates the rest; a syntax error anywhere takes precedence.
struct RequestPeekReader {
    var problem: RequestPeekError?
    /// Fields met so far, one bit each (a Set would allocate on every request).
    private var seen: UInt32 = 0

    /// The fields read; their raw value is their bit in `seen`.
    enum Field: UInt32, CaseIterable {
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

    /// The fields read at the top level (nested ones have a dotted name).
    static let topLevelFields = Field.allCases.filter { !$0.name.contains(".") }

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
                guard s.key(key, is: "include_usage") else {
                    _ = refusedCaseVariant(s, key, of: [.includeUsage], in: Field.streamOptions.name)
                    return false
                }
                guard first(.includeUsage) else { return false }
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
            if refusedCaseVariant(s, key, of: Self.topLevelFields) { return false }
            // Automatic caching names it at the top (its value is skipped, not read).
            if s.key(key, is: "cache_control") { peek.asksPromptCache = true }
            if s.key(key, is: "audio"), s.current == UInt8(ascii: "{") { peek.asksAudioAnswer = true }
            return false
        }
        return true
    }

    /// A top-level name that differs from a field read here only in case (`MODEL`, `Max_Tokens`)
    /// is refused: Go's encoding/json (Ollama's server) matches names without case, the last copy
    /// winning, so the provider would use a model or a limit never checked here. Go folds the
    /// Kelvin sign (U+212A) to `k` and the long s (U+017F) to `s` too. `fields`: those read in
    /// the object (the top level's, or `object`'s, e.g. `stream_options`).
    private mutating func refusedCaseVariant(_ s: JSONScanner, _ key: JSONScanner.StringToken, of fields: [Field],
                                             in object: String? = nil) -> Bool {
        // Most names are lower-case ASCII: a byte scan, no string made.
        guard key.hasEscapes || s.bytes[key.start..<key.end].contains(where: { $0 &- 0x41 < 26 || $0 >= 0x80 }) else {
            return false
        }
        let name = s.string(key)
        let folded = name.replacing("\u{17F}", with: "s").replacing("\u{212A}", with: "k")
        func member(_ field: Field) -> String { field.name.split(separator: ".").last.map(String.init) ?? field.name }
        guard let field = fields.first(where: { folded.utf8.equals(ignoringASCIICase: member($0).utf8) }) else {
            return false
        }
        let expected = member(field)
        note(.invalidField(name: object.map { "\($0).\(name)" } ?? name, requirement:
            "differs from '\(expected)' only in letter case; some servers read field names regardless of case and would take it for '\(expected)': send '\(expected)' alone"))
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

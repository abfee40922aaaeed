/// What the relay does with one SSE event.
enum EventRole: Equatable {
    /// Send it on.
    case pass
    /// Drop it: the usage chunk the proxy asked for on the client's behalf.
    case strip
    /// The stream's last event: hold it, and everything after, until the ledger row commits.
    case terminal
}

/// Reads usage, served model and errors from a stream's events, one event at a time.
///
/// Only events that can carry them are parsed: the event name decides for OpenAI responses
/// and Anthropic; OpenAI chat/completions chunks are parsed only when a cheap byte scan finds a
/// `"usage"` object or an `"error"` key (and the first chunk, for the model).
///
/// - chat.completions / completions: usage from the chunk with a non-null `usage` (with
///   `choices: []` it is the injected usage chunk, stripped when asked); terminal `data: [DONE]`.
/// - responses: model from `response.created`, usage from `response.usage` of the terminal
///   `response.completed` / `response.incomplete` / `response.failed`.
/// - Anthropic: `message_start`'s `message.usage` (its output count, a placeholder, left out),
///   then `message_delta`'s cumulative `usage` (latest value of each field wins); terminal
///   `message_stop`, or `error` (the stream ends there).
///
/// Searches are also counted as they finish (`searchesSeen`), so a stream cut before its usage
/// still bills the searches made: Responses' `response.web_search_call.completed` and
/// `response.file_search_call.completed`, Anthropic's `web_search_tool_result` blocks that
/// hold results (an error result is not billed). The usage's own count, when it comes, is at
/// least these.
struct StreamReading {
    let endpoint: Endpoint
    let stripInjectedUsage: Bool
    private(set) var usage: ReportedUsage?
    private(set) var servedModel: String?
    /// OpenAI's `service_tier` as the usage chunk or the terminal event gives it.
    private(set) var serviceTier: String?
    private(set) var errorMessage: String?
    /// The stream reported a failure: Anthropic's `error`, Responses' `response.failed` or
    /// `error`, a chat chunk with an `error` object (the error's message is in `errorMessage`).
    private(set) var failed = false
    /// Chat chunks read in full while looking for the model (Azure's first chunk has none).
    private var modelLookups = 0
    /// Generated text streamed so far, for an estimate if the stream is cut before its usage.
    private(set) var text = StreamedText()
    /// Searches the stream showed finished, whether or not its usage came.
    private(set) var searchesSeen = SearchCalls()

    init(endpoint: Endpoint, stripInjectedUsage: Bool) {
        self.endpoint = endpoint
        self.stripInjectedUsage = stripInjectedUsage && (endpoint == .chatCompletions || endpoint == .completions)
    }

    /// A chat or completions stream whose usage came is whole without `data: [DONE]`: a server
    /// writes its usage chunk last (or, streaming usage on every chunk, its running total), and
    /// some OpenAI-compatible servers end there (ik_llama.cpp did, its issue #467). Read once
    /// the transfer ended cleanly; a stream that reported an error is not whole.
    var wholeWithoutDoneMarker: Bool {
        (endpoint == .chatCompletions || endpoint == .completions) && usage != nil && !failed
    }

    /// The usage, with at least the searches seen (Anthropic's `message_start` usage, all a
    /// stream cut before `message_delta` has, counts none).
    var normalisedUsage: Usage? {
        guard var normalised = usage?.normalised(endpoint.dialect) else { return nil }
        normalised.webSearches = max(normalised.webSearches, searchesSeen.web)
        normalised.fileSearches = max(normalised.fileSearches, searchesSeen.file)
        return normalised
    }
    var servedTier: String?? { ResponseFields.servedTier(endpoint.dialect, serviceTier: serviceTier, usage: usage) }
    var servedGeo: String? { usage?.inferenceGeo }

    /// Decides an event's role and takes what it carries. `name` is the `event` field (empty if none).
    mutating func read(name: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer) -> EventRole {
        if StreamReading.carriesDelta(name: name, endpoint: endpoint) { text.count(data) }
        switch endpoint {
        case .responses: return readResponsesEvent(name: name, data: data)
        case .messages, .countTokens: return readAnthropicEvent(name: name, data: data)
        case .chatCompletions, .completions, .embeddings: return readChatChunk(data: data)
        }
    }

    private mutating func readChatChunk(data: UnsafeRawBufferPointer) -> EventRole {
        if ByteSearch.equals(data, "[DONE]") { return .terminal }
        let lookForModel = servedModel == nil && modelLookups < 4
        if lookForModel { modelLookups += 1 }
        let keys = lookForModel ? (usageObject: true, error: true) : StreamReading.scanKeys(data)
        guard keys.usageObject || keys.error, let fields = parse(data) else { return .pass }
        adoptModel(fields.model)
        if let message = fields.errorMessage {
            // An `{"error":…}` chunk: the provider's failure mid-stream, whatever ends it.
            errorMessage = message
            failed = true
        }
        guard let reported = fields.usage else { return .pass }
        usage = reported  // the usage chunk reports the whole call
        serviceTier = fields.serviceTier ?? serviceTier
        return stripInjectedUsage && fields.choicesEmpty ? .strip : .pass
    }

    /// Whether an event carries newly generated text (its text counts towards `OutputEstimate`):
    /// every chat/completions chunk; Responses `*.delta` events (the `*.done` ones repeat the
    /// whole text); Anthropic `content_block_delta`. An event without a name counts.
    static func carriesDelta(name: UnsafeRawBufferPointer, endpoint: Endpoint) -> Bool {
        guard !name.isEmpty else { return true }
        switch endpoint {
        case .chatCompletions, .completions, .embeddings: return true
        case .responses: return name.count >= 6 && ByteSearch.equals(UnsafeRawBufferPointer(rebasing: name[(name.count - 6)...]), ".delta")
        case .messages, .countTokens: return ByteSearch.equals(name, "content_block_delta")
        }
    }

    /// The events that matter to metering, by name.
    enum EventKind {
        case responseCreated, responseTerminal, responseFailed, error, messageStart, messageDelta, messageStop
        case webSearchDone, fileSearchDone, contentBlockStart, other

        init(_ name: UnsafeRawBufferPointer) {
            func named(_ text: StaticString) -> Bool { ByteSearch.equals(name, text) }
            if named("response.created") || named("response.in_progress") {
                self = .responseCreated
            } else if named("response.completed") || named("response.incomplete") {
                self = .responseTerminal
            } else if named("response.failed") {
                self = .responseFailed
            } else if named("error") {
                self = .error
            } else if named("message_start") {
                self = .messageStart
            } else if named("message_delta") {
                self = .messageDelta
            } else if named("message_stop") {
                self = .messageStop
            } else if named("content_block_start") {
                self = .contentBlockStart
            } else if named("response.web_search_call.completed") {
                self = .webSearchDone
            } else if named("response.file_search_call.completed") {
                self = .fileSearchDone
            } else {
                self = .other
            }
        }

        init(_ name: String) {
            var name = name
            self = name.withUTF8 { EventKind(UnsafeRawBufferPointer($0)) }
        }
    }

    /// The event's kind from its `event` field or, when it has none, from its JSON `type`
    /// (then parsed here, and handed back so it is not parsed twice).
    private func kind(name: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer) -> (EventKind, ResponseFields?) {
        guard name.isEmpty else { return (EventKind(name), nil) }
        guard let fields = parse(data), let type = fields.type else { return (.other, nil) }
        return (EventKind(type), fields)
    }

    private mutating func readResponsesEvent(name: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer) -> EventRole {
        let (kind, parsed) = kind(name: name, data: data)
        let wanted: Bool
        switch kind {
        case .responseTerminal, .responseFailed, .error: wanted = true
        case .responseCreated: wanted = servedModel == nil
        case .webSearchDone: searchesSeen.web += 1; return .pass
        case .fileSearchDone: searchesSeen.file += 1; return .pass
        default: return .pass
        }
        if kind == .responseFailed || kind == .error { failed = true }
        let terminal = kind == .responseTerminal || kind == .responseFailed
        let role: EventRole = terminal ? .terminal : .pass
        guard wanted, let fields = parsed ?? parse(data) else { return role }
        adoptModel(fields.model)
        if let message = fields.errorMessage { errorMessage = message }
        if terminal {
            if let reported = fields.usageWithSearches { usage = reported }
            serviceTier = fields.serviceTier ?? serviceTier
            // A failure's terminal event may list its searches with no usage to carry them.
            searchesSeen.raise(to: fields.searchCalls)
        }
        return role
    }

    private mutating func readAnthropicEvent(name: UnsafeRawBufferPointer, data: UnsafeRawBufferPointer) -> EventRole {
        let (kind, parsed) = kind(name: name, data: data)
        switch kind {
        case .messageStop: return .terminal
        case .messageStart, .messageDelta, .error: break
        case .contentBlockStart:
            if StreamReading.startsWebSearchResults(data) { searchesSeen.web += 1 }
            return .pass
        default: return .pass
        }
        if kind == .error { failed = true }
        let role: EventRole = kind == .error ? .terminal : .pass
        guard let fields = parsed ?? parse(data) else { return role }
        adoptModel(fields.model)
        if let message = fields.errorMessage { errorMessage = message }
        if var reported = fields.usage {
            // `message_start`'s output count is a placeholder (1): only `message_delta` counts the
            // output. A stream cut before it is billed for the text sent (`OutputEstimate`).
            if kind == .messageStart { reported.output = nil }
            if usage == nil { usage = reported } else { usage!.merge(reported) }
        }
        return role
    }

    /// The first non-empty model named wins.
    private mutating func adoptModel(_ model: String?) {
        if servedModel == nil, let model, !model.isEmpty { servedModel = model }
    }

    /// Whether an Anthropic `content_block_start` opens a `web_search_tool_result` block holding
    /// results (an array; an error is an object).
    static func startsWebSearchResults(_ data: UnsafeRawBufferPointer) -> Bool {
        var scanner = JSONScanner(data)
        scanner.skipWhitespace()
        guard scanner.current == UInt8(ascii: "{") else { return false }
        return (try? scanner.readWebSearchResultsStart()) ?? false
    }

    private func parse(_ data: UnsafeRawBufferPointer) -> ResponseFields? {
        var scanner = JSONScanner(data)
        scanner.skipWhitespace()
        guard scanner.current == UInt8(ascii: "{") else { return nil }
        return try? scanner.readResponseFields(dialect: endpoint.dialect)
    }

    /// Whether the bytes hold `"usage"` or `"error"` followed by `:` and an object. Looks only
    /// at each `{` (a chunk has a handful) and what precedes it. May say yes for text inside
    /// strings (the JSON parse then decides); never says no to a real key written without
    /// escapes, which is how providers write them.
    static func scanKeys(_ data: UnsafeRawBufferPointer) -> (usageObject: Bool, error: Bool) {
        var usageObject = false, error = false
        var i = 0
        while true {
            i = ByteSearch.first(UInt8(ascii: "{"), in: data, from: i)
            guard i < data.count else { break }
            var j = i - 1
            i += 1
            while j >= 0, isSpace(data[j]) { j -= 1 }
            guard j >= 0, data[j] == UInt8(ascii: ":") else { continue }
            j -= 1
            while j >= 0, isSpace(data[j]) { j -= 1 }
            let keyStart = j - 6  // `"usage"` and `"error"` are both 7 bytes
            guard keyStart >= 0 else { continue }
            if matches(data, at: keyStart, "\"usage\"") {
                usageObject = true
            } else if matches(data, at: keyStart, "\"error\"") {
                error = true
            }
        }
        return (usageObject, error)
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    static func matches(_ data: UnsafeRawBufferPointer, at index: Int, _ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard index + count <= data.count else { return false }
        let literal = text.utf8Start
        for k in 0..<count where data[index + k] != literal[k] { return false }
        return true
    }
}

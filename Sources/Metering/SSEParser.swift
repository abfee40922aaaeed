import NIOCore

/// One dispatched server-sent event with the exact bytes it occupied in the stream.
public struct SSEEvent: Sendable, Hashable {
    /// The `event` field, or `"message"` when the event had none (as the spec dispatches it).
    public var event: String
    /// `data` lines joined with `\n`.
    public var data: String
    /// The last event ID (persists across events, per the spec).
    public var id: String
    /// A valid `retry` field given in this event's block, if any.
    public var retry: Int?
    /// Absolute byte offsets in the stream, from the first byte of the event's first line
    /// through its terminating blank line.
    public var range: Range<Int>

    public init(event: String = "message", data: String, id: String = "", retry: Int? = nil, range: Range<Int>) {
        self.event = event
        self.data = data
        self.id = id
        self.retry = retry
        self.range = range
    }
}

/// An incremental `text/event-stream` parser (WHATWG HTML, "Server-sent events").
///
/// Fed arbitrary byte chunks; lines end in `\n`, `\r\n` or `\r`. A line ending in a `\r` that
/// closes the bytes fed so far is not processed until the next byte shows whether a `\n`
/// follows, so a `\r\n` split across chunks is one line end and every event's range is the same
/// however the stream was cut.
///
/// The hot-path API is pull-style and allocation-free once warm: `next(in:from:)` returns each
/// event's range while its fields stay readable (`eventType`, `data`) until the next call.
/// `feed(_:)` is the convenient, allocating form.
public struct SSEParser: Sendable {
    /// Absolute offset of the next byte to be fed.
    public private(set) var streamOffset = 0
    /// Absolute offset where the current, incomplete block (event or comment run) begins:
    /// every byte before it belongs to a block that is complete. Equals `streamOffset` between blocks.
    public private(set) var blockStart = 0
    /// The last event ID, per the spec.
    public private(set) var lastEventID: [UInt8] = []

    /// Bytes of a line cut by the end of a chunk.
    private var partialLine: [UInt8] = []
    /// The line in `partialLine` is complete but ended in `\r` at the end of the input: a `\n`
    /// at the start of the next input belongs to its terminator.
    private var lineEndsInCR = false
    /// Absolute offset of the first byte of the line being assembled.
    private var lineStart = 0

    // Buffers of the block being read; they keep their capacity between events.
    private(set) var eventTypeBytes: [UInt8] = []
    private(set) var dataBytes: [UInt8] = []
    private var hasData = false
    private var blockRetry: Int?
    /// The fields belong to an event already returned; clear them before reading on.
    private var dispatched = false

    /// Fields of the event last returned by `next(in:from:)` or `finish()`.
    public var eventType: String { eventTypeBytes.isEmpty ? "message" : String(decoding: eventTypeBytes, as: UTF8.self) }
    public var data: String { String(decoding: dataBytes, as: UTF8.self) }
    public var retry: Int? { blockRetry }

    public init() {}

    /// Reads `bytes` from `index` until one event is dispatched (returns its range, `index` is
    /// just past the event's blank line) or the bytes run out (returns nil, `index == bytes.count`).
    /// Call again with the same bytes and index until it returns nil, then feed the next chunk.
    public mutating func next(in bytes: UnsafeRawBufferPointer, from index: inout Int) -> Range<Int>? {
        if dispatched { resetBlock() }
        let base = streamOffset - index  // absolute offset of bytes[0]
        if lineEndsInCR {
            guard index < bytes.count else { return nil }
            lineEndsInCR = false
            if bytes[index] == UInt8(ascii: "\n") { index += 1 }
            streamOffset = base + index
            let event = partialLine.withUnsafeBytes { line in
                processLine(UnsafeRawBufferPointer(rebasing: line[..<(line.count - 1)]), end: streamOffset)
            }
            partialLine.removeAll(keepingCapacity: true)
            if let event { return event }
        }
        while index < bytes.count {
            // Find the end of the line.
            let end = ByteSearch.lineEnd(bytes, from: index)
            if end == bytes.count {
                partialLine.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<end]))
                index = end
                streamOffset = base + index
                return nil
            }
            var after = end + 1
            if bytes[end] == UInt8(ascii: "\r") {
                if after == bytes.count {
                    // Cannot tell `\r` from `\r\n` yet: keep the line, CR included, for the next call.
                    partialLine.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index...end]))
                    lineEndsInCR = true
                    index = after
                    streamOffset = base + index
                    return nil
                }
                if bytes[after] == UInt8(ascii: "\n") { after += 1 }
            }
            let lineBytes = UnsafeRawBufferPointer(rebasing: bytes[index..<end])
            index = after
            streamOffset = base + index
            let event: Range<Int>?
            if partialLine.isEmpty {
                event = processLine(lineBytes, end: streamOffset)
            } else {
                partialLine.append(contentsOf: lineBytes)
                event = partialLine.withUnsafeBytes { processLine($0, end: streamOffset) }
                partialLine.removeAll(keepingCapacity: true)
            }
            if let event { return event }
        }
        streamOffset = base + index
        return nil
    }

    /// The stream ended. Dispatches an event whose blank line was a final lone `\r`; an event
    /// without its blank line is discarded, as the spec says.
    public mutating func finish() -> Range<Int>? {
        if dispatched { resetBlock() }
        guard lineEndsInCR else { return nil }
        lineEndsInCR = false
        let event = partialLine.withUnsafeBytes { line in
            processLine(UnsafeRawBufferPointer(rebasing: line[..<(line.count - 1)]), end: streamOffset)
        }
        partialLine.removeAll(keepingCapacity: true)
        return event
    }

    /// Handles one complete line (terminator excluded) ending at absolute offset `end`.
    private mutating func processLine(_ raw: UnsafeRawBufferPointer, end: Int) -> Range<Int>? {
        var line = raw
        if lineStart == 0, line.starts(with: [0xEF, 0xBB, 0xBF]) {
            line = UnsafeRawBufferPointer(rebasing: line[3...])  // a leading BOM is not content
        }
        defer { lineStart = end }
        if line.isEmpty {
            let start = blockStart
            blockStart = end
            guard hasData else {
                // A block without data (comments, a bare `event:`) dispatches nothing.
                resetBlock()
                return nil
            }
            if dataBytes.last == UInt8(ascii: "\n") { dataBytes.removeLast() }
            dispatched = true
            return start..<end
        }
        if line[0] == UInt8(ascii: ":") { return nil }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.count
        let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
        var valueStart = Swift.min(colon + 1, line.count)
        if valueStart < line.count, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let value = UnsafeRawBufferPointer(rebasing: line[valueStart...])
        if ByteSearch.equals(name, "data") {
            dataBytes.append(contentsOf: value)
            dataBytes.append(UInt8(ascii: "\n"))
            hasData = true
        } else if ByteSearch.equals(name, "event") {
            eventTypeBytes.removeAll(keepingCapacity: true)
            eventTypeBytes.append(contentsOf: value)
        } else if ByteSearch.equals(name, "id") {
            if !value.contains(0) { lastEventID = Array(value) }
        } else if ByteSearch.equals(name, "retry") {
            if !value.isEmpty, value.count <= 18, value.allSatisfy(JSONScanner.isDigit) {
                blockRetry = value.reduce(0) { $0 * 10 + Int($1 &- UInt8(ascii: "0")) }
            }
        }
        return nil
    }

    private mutating func resetBlock() {
        eventTypeBytes.removeAll(keepingCapacity: true)
        dataBytes.removeAll(keepingCapacity: true)
        hasData = false
        blockRetry = nil
        dispatched = false
    }
}

extension SSEParser {
    /// Feeds a chunk and returns the events it completed (allocates; for tests and tools).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> [SSEEvent] {
        var events: [SSEEvent] = []
        var index = 0
        while let range = next(in: bytes, from: &index) { events.append(currentEvent(range)) }
        return events
    }

    public mutating func feed(_ bytes: some Collection<UInt8>) -> [SSEEvent] {
        Array(bytes).withUnsafeBytes { feed($0) }
    }

    public mutating func feed(_ buffer: ByteBuffer) -> [SSEEvent] {
        buffer.withUnsafeReadableBytes { feed($0) }
    }

    /// `finish()` as a value.
    public mutating func finishEvents() -> [SSEEvent] {
        finish().map { [currentEvent($0)] } ?? []
    }

    private func currentEvent(_ range: Range<Int>) -> SSEEvent {
        SSEEvent(event: eventType, data: data, id: String(decoding: lastEventID, as: UTF8.self), retry: retry, range: range)
    }
}

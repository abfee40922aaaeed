import NIOCore

extension ResponseMeter {
    /// The relay's states, swift-nio style: each state owns its data, and a transition moves the
    /// data out (leaving `.modifying`) so buffers are mutated in place, never copied.
    struct StateMachine: Sendable {
        enum State: Sendable {
            case awaitingHead
            case streaming(Streaming)
            case buffering(Buffering)
            case finished
            /// Transient, while a state's data is out being mutated.
            case modifying
        }

        private var state: State = .awaitingHead
        private let endpoint: Endpoint
        private let stripInjectedUsage: Bool
        private let providerKey: String?

        init(endpoint: Endpoint, stripInjectedUsage: Bool, providerKey: String?) {
            self.endpoint = endpoint
            self.stripInjectedUsage = stripInjectedUsage
            self.providerKey = providerKey
        }

        var isStreaming: Bool {
            if case .streaming = state { return true }
            return false
        }

        mutating func head(status: Int, isEventStream: Bool) {
            guard case .awaitingHead = state else {
                assertionFailure("head(status:contentType:) called twice or after the body")
                return
            }
            if status < 400 && isEventStream {
                state = .streaming(Streaming(endpoint: endpoint, stripInjectedUsage: stripInjectedUsage,
                                             providerKey: providerKey))
            } else {
                state = .buffering(Buffering(endpoint: endpoint, status: status))
            }
        }

        /// Moves the state out, leaving `.modifying`: a plain `switch state` binding would
        /// copy the payload (a retain per buffer it owns, on every chunk).
        private mutating func takeState() -> State {
            var taken = State.modifying
            swap(&taken, &state)
            return taken
        }

        mutating func consume(_ chunk: ByteBuffer) -> [ByteBuffer] {
            switch takeState() {
            case .awaitingHead:
                assertionFailure("body bytes before head(status:contentType:)")
                state = .buffering(Buffering(endpoint: endpoint, status: 200))
                return consume(chunk)
            case .streaming(var streaming):
                let out = streaming.consume(chunk)
                state = .streaming(streaming)
                return out
            case .buffering(var buffering):
                let out = buffering.consume(chunk)
                state = .buffering(buffering)
                return out
            case .finished:
                assertionFailure("body bytes after finish()")
                state = .finished
                return [chunk]  // never lose bytes
            case .modifying:
                preconditionFailure("ResponseMeter state machine re-entered")
            }
        }

        mutating func finish() -> (held: [ByteBuffer], result: MeterResult) {
            switch takeState() {
            case .awaitingHead, .finished:
                state = .finished
                return ([], MeterResult())
            case .streaming(var streaming):
                state = .finished
                return streaming.finish()
            case .buffering(var buffering):
                state = .finished
                return buffering.finish()
            case .modifying:
                preconditionFailure("ResponseMeter state machine re-entered")
            }
        }
    }

    /// An event stream: released event by event, the terminal event held.
    struct Streaming: Sendable {
        private var parser = SSEParser()
        private var reading: StreamReading
        private var pending = PendingBytes()
        /// Where the terminal event starts; from here on everything is held.
        private var terminalStart: Int?
        /// Events to drop or scrub, in stream order, not yet passed by the release point.
        private var edits: [EventEdit] = []
        /// An event outgrew `ResponseMeter.bodyLimit`: bytes now pass as they come, unread.
        private var passthrough = false
        private let providerKey: String?

        /// What becomes of one event's bytes on release.
        private struct EventEdit {
            enum Kind { case strip, scrub }
            var kind: Kind
            var range: Range<Int>
        }

        init(endpoint: Endpoint, stripInjectedUsage: Bool, providerKey: String?) {
            reading = StreamReading(endpoint: endpoint, stripInjectedUsage: stripInjectedUsage)
            self.providerKey = providerKey.flatMap { $0.isEmpty ? nil : $0 }
        }

        mutating func consume(_ chunk: ByteBuffer) -> [ByteBuffer] {
            guard chunk.readableBytes > 0 else { return [] }
            if passthrough { return [chunk] }
            pending.append(chunk)
            chunk.withUnsafeReadableBytes { bytes in
                var index = 0
                while let range = parser.next(in: bytes, from: &index) { take(range) }
            }
            var out: [ByteBuffer] = []
            // Everything before the block still being read is whole; stop at the terminal event.
            release(upTo: terminalStart ?? parser.blockStart, into: &out)
            if terminalStart == nil && pending.end - pending.start > ResponseMeter.bodyLimit {
                // One event this large is not a stream we know; holding it would let a broken
                // upstream grow memory without bound. Relay the rest as it comes, unread.
                passthrough = true
                release(upTo: pending.end, into: &out)
                parser = SSEParser()
            }
            return out
        }

        mutating func finish() -> (held: [ByteBuffer], result: MeterResult) {
            if !passthrough, let range = parser.finish() { take(range) }
            var held: [ByteBuffer] = []
            release(upTo: pending.end, into: &held)
            var result = MeterResult(usage: reading.normalisedUsage, servedModel: reading.servedModel,
                                     providerErrorMessage: ResponseUsage.truncated(reading.errorMessage),
                                     sawTerminalEvent: terminalStart != nil || reading.wholeWithoutDoneMarker,
                                     isStream: true)
            (result.estimatedOutputTokens, result.estimatedAudioOutputTokens) = OutputEstimate.tokens(reading.text)
            result.streamFailed = reading.failed
            result.searchesSeen = reading.searchesSeen
            result.servedTier = reading.servedTier
            result.servedGeo = reading.servedGeo
            return (held, result)
        }

        /// One event dispatched by the parser; its fields are readable until the next `next`.
        private mutating func take(_ range: Range<Int>) {
            guard terminalStart == nil else { return }  // after the end: relayed, not read
            // Local references (not copies) so `reading` can change while they are read.
            let name = parser.eventTypeBytes, data = parser.dataBytes
            let failuresBefore = reading.failureEvents
            let role = name.withUnsafeBytes { name in
                data.withUnsafeBytes { data in reading.read(name: name, data: data) }
            }
            // An error event may quote the request's headers, the gateway's key among them.
            if providerKey != nil, reading.failureEvents > failuresBefore {
                edits.append(EventEdit(kind: .scrub, range: range))
            }
            switch role {
            case .pass: break
            case .strip: edits.append(EventEdit(kind: .strip, range: range))
            case .terminal: terminalStart = range.lowerBound
            }
        }

        private mutating func release(upTo boundary: Int, into out: inout [ByteBuffer]) {
            while let edit = edits.first, edit.range.upperBound <= boundary {
                pending.release(upTo: edit.range.lowerBound, into: &out)
                switch edit.kind {
                case .strip:
                    pending.drop(upTo: edit.range.upperBound)
                case .scrub:
                    var event: [ByteBuffer] = []
                    pending.release(upTo: edit.range.upperBound, into: &event)
                    out.append(CredentialScrub.scrub(event, secret: providerKey!))
                }
                edits.removeFirst()
            }
            pending.release(upTo: boundary, into: &out)
        }
    }

    /// Any other response: relayed one chunk behind, kept for reading usage at the end.
    struct Buffering: Sendable {
        private let endpoint: Endpoint
        private let status: Int
        private var held: ByteBuffer?
        private var body: [ByteBuffer] = []
        private var bodyBytes = 0
        private var tooLarge = false
        /// Past the limit: the body's last chunks, at least `tailLimit` bytes when it has them,
        /// where the usage of an answer that big is (the last member of OpenAI's and
        /// Anthropic's documents; an embeddings batch is the usual case).
        private var tail: CircularBuffer<ByteBuffer>?  // made only past the limit: a buffer's storage is a malloc
        private var tailBytes = 0
        static let tailLimit = 64 << 10

        init(endpoint: Endpoint, status: Int) {
            self.endpoint = endpoint
            self.status = status
        }

        mutating func consume(_ chunk: ByteBuffer) -> [ByteBuffer] {
            guard chunk.readableBytes > 0 else { return [] }
            if !tooLarge {
                bodyBytes += chunk.readableBytes
                body.append(chunk)
                if bodyBytes > ResponseMeter.bodyLimit {
                    tooLarge = true
                    (tail, tailBytes) = (CircularBuffer(body), bodyBytes)
                    body = []
                    keepTail()
                }
            } else {
                tail?.append(chunk)
                tailBytes += chunk.readableBytes
                keepTail()
            }
            defer { held = chunk }
            return held.map { [$0] } ?? []
        }

        private mutating func keepTail() {
            while let first = tail?.first, tailBytes - first.readableBytes >= Self.tailLimit {
                tailBytes -= first.readableBytes
                tail?.removeFirst()
            }
        }

        /// The usage of a body too large to read whole, from its tail: the last `"usage"` key
        /// and what follows it, read as the document `{"usage":…}`. Only a top-level usage
        /// makes that document end where the body ends; a nested one leaves a brace over.
        private func usageFromTail() -> ResponseReading? {
            var joined = ByteBuffer()
            joined.reserveCapacity(tailBytes)
            for part in tail ?? CircularBuffer() { joined.writeImmutableBuffer(part) }
            return joined.withUnsafeReadableBytes { bytes -> ResponseReading? in
                let key: StaticString = "\"usage\""
                var at = bytes.count - key.utf8CodeUnitCount
                while at >= 0, !StreamReading.matches(bytes, at: at, key) { at -= 1 }
                guard at >= 0 else { return nil }
                var document: [UInt8] = [UInt8(ascii: "{")]
                document.append(contentsOf: bytes[at...])
                let reading = ResponseUsage.read(endpoint: endpoint, status: status, body: document)
                return reading.isCompleteJSON && reading.usage != nil ? reading : nil
            }
        }

        mutating func finish() -> (held: [ByteBuffer], result: MeterResult) {
            let heldBytes = held.map { [$0] } ?? []
            guard !tooLarge else {
                let tail = usageFromTail()
                var result = MeterResult(usage: tail?.usage)
                result.servedTier = tail?.servedTier ?? nil
                result.servedGeo = tail?.servedGeo
                result.bodyUnread = true
                return (heldBytes, result)
            }
            var whole: ByteBuffer
            if body.count == 1 {
                whole = body[0]
            } else {
                whole = ByteBuffer()
                whole.reserveCapacity(bodyBytes)
                for part in body { whole.writeImmutableBuffer(part) }
            }
            let reading = ResponseUsage.read(endpoint: endpoint, status: status, body: whole)
            var result = MeterResult(usage: reading.usage, servedModel: reading.servedModel,
                                     providerErrorMessage: reading.providerErrorMessage,
                                     sawTerminalEvent: reading.isCompleteJSON, isStream: false)
            result.servedTier = reading.servedTier
            result.servedGeo = reading.servedGeo
            if status < 400, reading.usage == nil || reading.outputCountMissing,
               endpoint != .embeddings, endpoint != .countTokens {
                // No usable usage (missing, negative, absurd), or no output count: the answer's
                // text is the estimate (none when it has no text).
                var text = StreamedText()
                whole.withUnsafeReadableBytes { text.countAll($0) }
                (result.estimatedOutputTokens, result.estimatedAudioOutputTokens) = OutputEstimate.tokens(text)
            }
            return (heldBytes, result)
        }
    }
}

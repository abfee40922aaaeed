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

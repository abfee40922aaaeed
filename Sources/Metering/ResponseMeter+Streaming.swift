import NIOCore

extension ResponseMeter {
    /// An event stream: released event by event, the terminal event held.
    ///
    /// With a provider key, nothing of the key reaches the client: a provider (or a proxy before
    /// it) may quote the request's headers in an error event, as in an error page. An event that
    /// names an error (`error` in its name or data) is scrubbed as it is released; the held
    /// terminal event and anything after it are scrubbed at the end; an event the stream ends
    /// inside (which clients discard, as the SSE spec says) is not relayed, since it may end
    /// partway through a copy of the key. A stream past `bodyLimit`, relayed unread, is scrubbed
    /// as it passes (`CredentialScrub.scrub(stream:…)`).
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
        /// In passthrough with a key: the last bytes, which could begin a copy of the key.
        private var carried: [UInt8] = []

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
            if passthrough { return pass([chunk], final: false) }
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
                var rest: [ByteBuffer] = []
                pending.release(upTo: pending.end, into: &rest)
                out += pass(rest, final: false)
                parser = SSEParser()
            }
            return out
        }

        mutating func finish() -> (held: [ByteBuffer], result: MeterResult) {
            var held: [ByteBuffer] = []
            if passthrough {
                held = pass([], final: true)
            } else {
                if let range = parser.finish() { take(range) }
                if let providerKey {
                    release(upTo: parser.blockStart, into: &held)
                    pending.drop(upTo: pending.end)
                    if !held.isEmpty { held = [CredentialScrub.scrub(held, secret: providerKey)] }
                } else {
                    release(upTo: pending.end, into: &held)
                }
            }
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
            let role = name.withUnsafeBytes { name in
                data.withUnsafeBytes { data in reading.read(name: name, data: data) }
            }
            switch role {
            case .pass:
                guard providerKey != nil else { return }
                let namesError = name.withUnsafeBytes { name in
                    data.withUnsafeBytes { ByteSearch.contains("error", in: name) || ByteSearch.contains("error", in: $0) }
                }
                if namesError { edits.append(EventEdit(kind: .scrub, range: range)) }
            case .strip: edits.append(EventEdit(kind: .strip, range: range))  // dropped: none of it is sent
            case .terminal: terminalStart = range.lowerBound  // held, and scrubbed at the end
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

        /// Passthrough: the bytes as they come, or with a key, scrubbed (the last few carried to
        /// the next chunk, or sent at the end).
        private mutating func pass(_ parts: [ByteBuffer], final: Bool) -> [ByteBuffer] {
            guard let providerKey else { return parts }
            var bytes = carried
            for part in parts { bytes += part.readableBytesView }
            let (ready, carry) = CredentialScrub.scrub(stream: bytes, secret: providerKey, final: final)
            carried = carry
            return ready.readableBytes > 0 ? [ready] : []
        }
    }
}

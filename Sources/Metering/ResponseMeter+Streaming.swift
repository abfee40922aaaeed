import NIOCore

extension ResponseMeter {
    /// An event stream: released event by event, the terminal event held.
    ///
    /// With a provider key, nothing of the key reaches the client: a provider (or a proxy before
    /// it) may quote the request's headers in an error event, as in an error page. Whatever is
    /// released (whole events, and comments between them) is checked for a copy where it lies
    /// (`CredentialScrub.mayHold`) and scrubbed if it holds one. An event the stream ends inside
    /// (which clients discard, as the SSE spec says) is not relayed, since it may end partway
    /// through a copy. A stream past `bodyLimit`, relayed unread, is scrubbed as it passes
    /// (`CredentialScrub.scrub(stream:…)`).
    struct Streaming: Sendable {
        private var parser = SSEParser()
        private var reading: StreamReading
        private var pending = PendingBytes()
        /// Where the terminal event starts; from here on everything is held.
        private var terminalStart: Int?
        /// Events to drop, not yet passed by the release point.
        private var stripped: [Range<Int>] = []
        /// An event outgrew `ResponseMeter.bodyLimit`: bytes now pass as they come, unread.
        private var passthrough = false
        /// The key's bytes, when there is a key to keep from the client.
        private let providerKey: [UInt8]?
        /// In passthrough with a key: the last bytes, which could begin a copy of the key.
        private var carried: [UInt8] = []

        init(endpoint: Endpoint, stripInjectedUsage: Bool, providerKey: String?) {
            reading = StreamReading(endpoint: endpoint, stripInjectedUsage: stripInjectedUsage)
            self.providerKey = providerKey.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
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
                release(upTo: providerKey == nil ? pending.end : parser.blockStart, into: &held)
                pending.drop(upTo: pending.end)
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
            case .pass: break
            case .strip: stripped.append(range)
            case .terminal: terminalStart = range.lowerBound
            }
        }

        /// Releases the bytes before `boundary`, which ends a block, less the stripped events;
        /// with a key, scrubbed if they hold a copy.
        private mutating func release(upTo boundary: Int, into out: inout [ByteBuffer]) {
            let first = out.count
            releaseUnchecked(upTo: boundary, into: &out)
            guard let providerKey, CredentialScrub.mayHold(providerKey, in: out[first...]) else { return }
            let scrubbed = CredentialScrub.scrub(Array(out[first...]), key: providerKey)
            out.removeSubrange(first...)
            out.append(scrubbed)
        }

        private mutating func releaseUnchecked(upTo boundary: Int, into out: inout [ByteBuffer]) {
            while let range = stripped.first, range.upperBound <= boundary {
                pending.release(upTo: range.lowerBound, into: &out)
                pending.drop(upTo: range.upperBound)
                stripped.removeFirst()
            }
            pending.release(upTo: boundary, into: &out)
        }

        /// Passthrough: the bytes as they come, or with a key, scrubbed (the last few carried to
        /// the next chunk, or sent at the end).
        private mutating func pass(_ parts: [ByteBuffer], final: Bool) -> [ByteBuffer] {
            guard let providerKey else { return parts }
            var bytes = carried
            for part in parts { bytes += part.readableBytesView }
            let (ready, carry) = CredentialScrub.scrub(stream: bytes, key: providerKey, final: final)
            carried = carry
            return ready.readableBytes > 0 ? [ready] : []
        }
    }
}

/// The provider-side deadlines of one call besides its connect and total timeouts (libcurl and
/// the curl driver keep those): the
/// first byte (the response head) must arrive within `firstByteMicros` of the request being
/// sent, and a body must never go silent for `idleMicros`. Pure: the call feeds it events and
/// asks when to look again, so one timer per call covers both deadlines (no timer per chunk).
struct UpstreamWatch {
    enum Expiry: Equatable {
        case firstByte(limitMicros: Int64)
        case idle(limitMicros: Int64)

        var message: String {
            switch self {
            case .firstByte(let limit): return "no response within \(limit / 1_000) ms (first_byte_timeout_ms)"
            case .idle(let limit): return "the response went silent for \(limit / 1_000) ms (idle_timeout_ms)"
            }
        }
    }

    enum Verdict: Equatable {
        /// Look again at this instant (Unix µs).
        case checkAt(Int64)
        case expired(Expiry)
        /// No timer needed: no first-byte deadline while the head is awaited, or no idle deadline after.
        case done
    }

    let firstByteMicros: Int64?
    let idleMicros: Int64?
    private var sentAt: Int64
    private var headAt: Int64?
    private var lastByteAt: Int64?
    /// While the client holds the relay paused, silence is the client's doing, not the provider's.
    private var pausedSince: Int64?

    init(firstByteMs: Int?, idleMs: Int?, sentAt: Int64) {
        firstByteMicros = firstByteMs.map { Int64($0) * 1_000 }
        idleMicros = idleMs.map { Int64($0) * 1_000 }
        self.sentAt = sentAt
    }

    var isActive: Bool { firstByteMicros != nil || idleMicros != nil }

    mutating func head(at now: Int64) {
        headAt = now
        lastByteAt = now
    }

    mutating func bytes(at now: Int64) { lastByteAt = now }

    mutating func paused(at now: Int64) { if pausedSince == nil { pausedSince = now } }

    mutating func resumed(at now: Int64) {
        guard let since = pausedSince else { return }
        pausedSince = nil
        // The pause does not count as silence.
        if let last = lastByteAt { lastByteAt = last + (now - since) }
    }

    func verdict(at now: Int64) -> Verdict {
        guard headAt != nil else {
            guard let limit = firstByteMicros else { return .done }
            return now - sentAt >= limit ? .expired(.firstByte(limitMicros: limit)) : .checkAt(sentAt + limit)
        }
        guard let limit = idleMicros, let last = lastByteAt else { return .done }
        if pausedSince != nil { return .checkAt(now + limit) }
        return now - last >= limit ? .expired(.idle(limitMicros: limit)) : .checkAt(last + limit)
    }
}

/// The refusals of unknown callers left unrecorded, tallied per window for one log line each:
/// pure, time passed in. A window opens with the first such refusal and is closed by the timer
/// its opening set (`close`); an episode is a run of windows with less than a window between them,
/// and only its first opening is announced.
struct UnrecordedRefusalTally: Sendable {
    enum Added: Equatable {
        /// Counted in the open window.
        case counted
        /// Opened a window right after the last one closed (the flood goes on).
        case opened
        /// Opened a window after a quiet window or more: worth a line of its own.
        case openedEpisode
    }

    struct Summary: Equatable {
        /// When the window opened (Unix µs).
        var openedAt: Int64
        var total: Int
        /// The addresses with the most refusals, most first (ties by address).
        var top: [AddressCount]
        /// Tallied addresses beyond `top`.
        var otherAddresses: Int
        /// Refusals from addresses past the `addressesKept` tallied by name.
        var untallied: Int
    }

    struct AddressCount: Equatable {
        var address: String
        var count: Int
    }

    /// Addresses tallied by name in one window; more are only counted (a spread flood cannot
    /// grow this without bound).
    static let addressesKept = 256
    static let topShown = 3

    private var counts: [String: Int] = [:]
    /// Refusals from addresses past `addressesKept`.
    private var untallied = 0
    private var total = 0
    /// When the open window opened; nil while none is.
    private var openedAt: Int64?
    private var closedAt: Int64?

    mutating func add(_ address: String, now: Int64, window: Int64) -> Added {
        var added = Added.counted
        if openedAt == nil {
            openedAt = now
            added = closedAt.map { now - $0 < window } == true ? .opened : .openedEpisode
        }
        total += 1
        if counts[address] != nil || counts.count < Self.addressesKept {
            counts[address, default: 0] += 1
        } else {
            untallied += 1
        }
        return added
    }

    /// Ends the open window and says what it held (nil if none was open).
    mutating func close(now: Int64) -> Summary? {
        guard let openedAt else { return nil }
        let sorted = counts.map { AddressCount(address: $0.key, count: $0.value) }
            .sorted { $0.count != $1.count ? $0.count > $1.count : $0.address < $1.address }
        let summary = Summary(openedAt: openedAt, total: total, top: Array(sorted.prefix(Self.topShown)),
                              otherAddresses: max(0, sorted.count - Self.topShown), untallied: untallied)
        counts.removeAll(keepingCapacity: false)
        untallied = 0
        total = 0
        self.openedAt = nil
        closedAt = now
        return summary
    }
}

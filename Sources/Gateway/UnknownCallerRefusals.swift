#if canImport(Glibc)
import Glibc
#endif
import Ledger
import Logging
import NIOCore
import Policy
import Synchronization

/// Which refusals of unknown callers (no key, an unknown or a revoked one) leave a trace, a
/// ledger row or (admin requests) a log line: those within `unknown_callers` in gateway.yaml, per
/// client address and for all together. Anyone who reaches the port can send such requests for
/// free, and a row each would let them fill the ledger's disk. The others are answered the same
/// and summed up in one log line a minute (with the addresses that sent most). Model routes and
/// admin requests have one each, so a flood of one cannot hide the other.
final class UnknownCallerRefusals: Sendable {
    private let rates = RateLimiter()
    private let unrecorded = Mutex(UnrecordedRefusalTally())
    private let logger: Logger
    /// What a refusal past the limits goes without, for the log ("a ledger row").
    private let trace: String
    private let window: TimeAmount

    init(logger: Logger, trace: String, window: TimeAmount = .minutes(1)) {
        self.logger = logger
        self.trace = trace
        self.window = window
    }

    /// Whether the refusal of a request from `peer` without a known key leaves its trace. When it
    /// does not, it is tallied; the refusal that opens a window schedules its summary on `loop`.
    func mayRecord(from peer: SocketAddress?, _ settings: UnknownCallerSettings, now: Int64, on loop: any EventLoop) -> Bool {
        let address = Self.address(of: peer)
        let decision = rates.admit("address " + address,
                                   limits: RateLimits(requestsPerMinute: settings.rowsPerMinutePerAddress),
                                   and: "all", limits: RateLimits(requestsPerMinute: settings.rowsPerMinute),
                                   tokens: 0, now: now)
        if case .allowed = decision { return true }
        let added = unrecorded.withLock { $0.add(address, now: now, window: window.nanoseconds / 1_000) }
        if added == .openedEpisode {
            logger.warning("refusals of unknown callers are past unknown_callers in gateway.yaml: answered without \(trace) while they stay past it", metadata: [
                "address": "\(address)", "rows_per_minute": "\(settings.rowsPerMinute)",
                "rows_per_minute_per_address": "\(settings.rowsPerMinutePerAddress)",
            ])
        }
        if added != .counted {
            loop.scheduleTask(in: window) { [self] in summarise(now: UnixTime.nowMicros()) }
        }
        return false
    }

    /// Logs the open window's unrecorded refusals and closes it (its timer, or the gateway's stop).
    func summarise(now: Int64) {
        guard let summary = unrecorded.withLock({ $0.close(now: now) }) else { return }
        var from = summary.top.map { "\($0.address) (\($0.count))" }.joined(separator: ", ")
        if summary.otherAddresses > 0 { from += ", \(summary.otherAddresses) more addresses" }
        if summary.untallied > 0 { from += ", \(summary.untallied) from addresses past the \(UnrecordedRefusalTally.addressesKept) tallied" }
        logger.warning("refusals of unknown callers answered without \(trace)", metadata: [
            "count": "\(summary.total)", "seconds": "\(max(0, now - summary.openedAt) / 1_000_000)", "from": "\(from)",
        ])
    }

    /// A client's address as its refusals are limited and tallied: an IPv4 address whole (also
    /// when mapped into IPv6), an IPv6 one by its /64, the block one host is usually given.
    static func address(of peer: SocketAddress?) -> String {
        switch peer {
        case .v4:
            return peer?.ipAddress ?? "unknown"
        case .v6(let v6):
            var bytes = [UInt8](repeating: 0, count: 16)
            withUnsafeBytes(of: v6.address.sin6_addr) { bytes = Array($0) }
            if bytes.prefix(10).allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
                return bytes[12...].map(String.init).joined(separator: ".")
            }
            for i in 8..<16 { bytes[i] = 0 }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            let written = bytes.withUnsafeBytes { inet_ntop(AF_INET6, $0.baseAddress, &text, socklen_t(text.count)) }
            guard written != nil else { return "unknown" }
            return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/64"
        case .unixDomainSocket:
            return "local"
        case nil:
            return "unknown"
        }
    }
}

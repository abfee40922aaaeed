/// `gateway.yaml`'s `unknown_callers`: how many refusals of requests without a known key (no key,
/// an unknown or revoked one) get a ledger row. Anyone who can reach the port can send those, at
/// line rate and at no cost to them; a row each would let them fill the ledger's disk, and a full
/// disk stops every caller's calls (the gateway fails closed). Past these rates such a refusal is
/// still answered, and counted in the metrics and the log, but not recorded. Admin requests
/// without a known key get their log line within the same rates, on meters of their own. Each
/// replica counts its own.
public struct UnknownCallerSettings: Sendable, Hashable {
    /// Rows a minute for all unknown callers together (the burst is as large).
    public var rowsPerMinute: Int
    /// Rows a minute for one client address (an IPv6 address's /64), so one address's flood does
    /// not hide the others' refusals. Behind a load balancer every client shares its address.
    public var rowsPerMinutePerAddress: Int

    public init(rowsPerMinute: Int = 600, rowsPerMinutePerAddress: Int = 60) {
        self.rowsPerMinute = rowsPerMinute
        self.rowsPerMinutePerAddress = rowsPerMinutePerAddress
    }

    public static let defaults = UnknownCallerSettings()
}

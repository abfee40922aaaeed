import NIOCore
import PostgresLedger

/// Where and how the gateway listens. Call-level settings (body limit, timeouts, unpriced
/// models) come from the policy's `gateway.yaml`, so admins change them with the policies.
public struct GatewayConfiguration: Sendable {
    public var host: String
    /// 0 binds an ephemeral port (tests, demo); the bound port is `GatewayServer.port`.
    public var port: Int
    /// Event loop threads; each connection's calls run on one of them.
    public var eventLoopThreads: Int
    /// With a PostgreSQL ledger: heartbeats, reaping and timeouts of the budgets shared by replicas.
    public var sharedQuota: SharedQuotaSettings
    /// False only to measure the ledger's cost (the benchmark's ledger-off arm): calls are
    /// served and metered but not recorded (`DiscardingLedgerSink`).
    public var recordCalls: Bool

    public init(host: String = "127.0.0.1", port: Int = 8080,
                eventLoopThreads: Int = System.coreCount, sharedQuota: SharedQuotaSettings = SharedQuotaSettings(),
                recordCalls: Bool = true) {
        self.host = host
        self.port = port
        self.eventLoopThreads = eventLoopThreads
        self.sharedQuota = sharedQuota
        self.recordCalls = recordCalls
    }
}


import Ledger
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Policy
import Upstream

/// What every connection handler shares: the policy in force and the thread-safe services.
final class GatewayContext: Sendable {
    let policies: PolicyReloader
    let principals: PrincipalDirectory
    let upstream: UpstreamClient
    let ledger: any LedgerSink
    let logger: Logger
    let enforcer: Enforcer
    let metrics: GatewayMetrics
    let providerGates = ProviderGates()
    let idempotency = IdempotencyStore()
    let ledgerHealth: LedgerHealth
    let journal: InFlightJournal
    let connections: OpenConnections
    /// Which refusals of callers without a known key get a row, and on admin routes a log line.
    let unknownCallers: UnknownCallerRefusals
    let unknownAdminCallers: UnknownCallerRefusals
    /// Providers whose refusal of the `stream_options` the gateway adds was logged (once each).
    let refusedStreamOptions = NIOLockedValueBox<Set<String>>([])
    /// Set when the gateway begins to stop: calls between attempts end instead of trying again.
    let stopping = NIOLockedValueBox(false)
    var isStopping: Bool { stopping.withLockedValue { $0 } }

    init(policies: PolicyReloader, principals: PrincipalDirectory, upstream: UpstreamClient,
         ledger: any LedgerSink, logger: Logger, enforcer: Enforcer, metrics: GatewayMetrics,
         ledgerHealth: LedgerHealth, journal: InFlightJournal, connections: OpenConnections) {
        self.connections = connections
        self.ledgerHealth = ledgerHealth
        self.journal = journal
        self.enforcer = enforcer
        self.metrics = metrics
        self.policies = policies
        self.principals = principals
        self.upstream = upstream
        self.ledger = ledger
        self.logger = logger
        unknownCallers = UnknownCallerRefusals(logger: logger, trace: "a ledger row")
        unknownAdminCallers = UnknownCallerRefusals(logger: logger, trace: "a log line (admin requests)")
    }

    /// Stamps the call's end, appends its row and runs `deliver` on `loop` once it is recorded (in
    /// the ledger's journal, or committed): the client's final bytes wait for the row (invariant
    /// 1). If the row cannot be recorded, the connection is cut instead, so no client ever holds
    /// a complete answer the ledger lacks, and `notRecorded` runs on `loop` (what the call used
    /// is still owed to the shared budgets).
    func record(_ entry: consuming LedgerEntry, on loop: any EventLoop, connection: any ClientConnection,
                notRecorded: (@Sendable (LedgerEntry) -> Void)? = nil, then deliver: @escaping () -> Void) {
        entry.endedAt = UnixTime.nowMicros()
        let onLoop = NIOLoopBound((connection: connection, deliver: deliver), eventLoop: loop)
        let logger = self.logger
        let metrics = self.metrics
        let recorded = entry
        // Staged: the loop records the rows of its pass itself, after the pass (no thread hop).
        let mustRecord = ledger.stage(entry) { result in
            metrics.count(recorded, result)
            loop.execute {
                let (connection, deliver) = onLoop.value
                if case .failure(let error) = result {
                    logger.error("ledger commit failed", metadata: ["error": "\(error)"])
                    notRecorded?(recorded)
                    connection.abort()
                    return
                }
                deliver()
            }
        }
        if mustRecord {
            let ledger = self.ledger
            loop.execute { ledger.recordStaged() }
        }
    }

    /// Stamps the call's end and appends its row without anyone waiting for it: for a refusal
    /// answered before its row is recorded (see `ProxyHandler.refuse`).
    func recordDetached(_ entry: consuming LedgerEntry) {
        entry.endedAt = UnixTime.nowMicros()
        let metrics = self.metrics, recorded = entry
        ledger.append(entry) { metrics.count(recorded, $0) }
    }
}

import Foundation
import Ledger
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Policy
import PostgresLedger
import Upstream

/// The running proxy: the SwiftNIO HTTP/1.1 server plus the services its calls share
/// (the curl driver thread, the ledger writer thread, the key directory).
public final class GatewayServer: Sendable {
    public let port: Int
    /// Request bodies the upstream client let go while their answers streamed (tests read it).
    var upstreamBodiesReleased: Int { context.upstream.sentBodiesReleased }
    public let host: String
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let context: GatewayContext
    private let keys: any APIKeyStore
    private let admin: AdminAPI
    /// Budgets shared with other replicas (PostgreSQL), and this replica's heartbeat and reaper.
    private let sharedQuotas: SharedQuotaBook?
    private let quotaReaper: QuotaReaper?
    private let memory: MemoryReturn
    /// A SQLite ledger's one server (`LedgerServerLock`), let go once the ledger is closed.
    private let serverLock: LedgerServerLock?
    /// The look at a SQLite ledger's file, once a second (`LedgerFileIdentity`).
    private let fileWatch: RepeatedTask?
    /// Opens when `shutdown()` has finished (calls recorded, ledger closed); `wait()` waits for it.
    private let stopped = NIOLockedValueBox(false)
    private let stoppedCondition = ConditionLock(value: 0)

    /// Opens the ledger (migrating it), loads keys, starts the upstream driver and binds.
    /// With `policyDirectory`, changes to its files are picked up while serving (see `PolicyReloader`).
    /// `databasePath` is a `--db` value: a SQLite file, or a `postgres://` URL (see `LedgerBackend`);
    /// with PostgreSQL the in-flight journal goes in `journalDirectory` (SQLite's stays beside the file)
    /// and budgets are shared with the other replicas through the same database (`SharedQuotaBook`,
    /// tuned by `configuration.sharedQuota`; tests may pass their own `sharedQuotas`).
    public static func start(configuration: GatewayConfiguration, policy: PolicySet,
                             policyDirectory: String? = nil,
                             environment: [String: String] = ProcessInfo.processInfo.environment,
                             databasePath: String, journalDirectory: String = "data",
                             sharedQuotas: SharedQuotaBook? = nil,
                             logger: Logger) throws -> GatewayServer {
        let backend = try LedgerBackend(databasePath)
        // Before any journal is replayed or budget rebuilt: a second server on a SQLite ledger
        // would count its budgets apart from the first's (PostgreSQL replicas share theirs).
        let serverLock = try backend.recordedFile(configuration).map(LedgerServerLock.init(ledgerPath:))
        var sharedQuotas = sharedQuotas
        if case .postgres(let location) = backend {
            try FileManager.default.createDirectory(atPath: journalDirectory, withIntermediateDirectories: true)
            if sharedQuotas == nil {
                sharedQuotas = SharedQuotaBook(location: location, settings: configuration.sharedQuota, logger: logger)
            }
        }
        do {
            return try start(configuration: configuration, policy: policy, policyDirectory: policyDirectory,
                             environment: environment, backend: backend, journalDirectory: journalDirectory,
                             sharedQuotas: sharedQuotas, serverLock: serverLock, logger: logger)
        } catch {
            serverLock?.release()
            // Its connections are closed, not dropped (PostgresNIO requires it), and its heartbeat removed.
            try? sharedQuotas?.shutdown(on: MultiThreadedEventLoopGroup.singleton.next()).wait()
            throw error
        }
    }

    /// `start` once the shared quota book, if any, exists: the caller shuts it down if this throws.
    private static func start(configuration: GatewayConfiguration, policy: PolicySet, policyDirectory: String?,
                              environment: [String: String], backend: LedgerBackend, journalDirectory: String,
                              sharedQuotas: SharedQuotaBook?, serverLock: LedgerServerLock?,
                              logger: Logger) throws -> GatewayServer {
        let journalBase = backend.journalBase(directory: journalDirectory)
        let policies = PolicyReloader(policy: policy, directory: policyDirectory, environment: environment,
                                      logger: logger, budgetsFollowTimeZone: sharedQuotas != nil)
        // Tables and functions installed, and a first heartbeat, before any call can hold budget.
        try sharedQuotas?.prepare(on: MultiThreadedEventLoopGroup.singleton.next()).wait()
        let enforcer = Enforcer(sharedQuotas: sharedQuotas, timeZone: policy.plans.timeZone)
        let metrics = GatewayMetrics(policies: policies, enforcer: enforcer)
        let ledgerHealth = LedgerHealth(logger: logger)
        let ledger: any LedgerSink = configuration.recordCalls
            ? try backend.openSink(options: ledgerHealth.tracking(metrics.ledgerOptions)) : DiscardingLedgerSink()
        if let replayed = (ledger as? LedgerWriter)?.replayed, replayed != JournalReplay() {
            logger.warning("committed the rows a stopped gateway had left in its ledger journal", metadata: [
                "rows": "\(replayed.rows)", "already_recorded": "\(replayed.alreadyRecorded)",
                "failed": "\(replayed.failed)", "damaged_bytes": "\(replayed.damagedBytes)",
                "unreadable": "\(replayed.unreadable)"])
        }
        // Calls a crashed process had in flight (start markers, no row) are recorded first, so the
        // quota rebuild below and every report see them.
        let recovered = InFlightJournal.recover(databasePath: journalBase, into: ledger)
        if recovered.rows > 0 {
            logger.warning("recorded the calls a stopped process left without a row (kept rows, or as interrupted)",
                           metadata: ["calls": "\(recovered.rows)", "with_usage": "\(recovered.keptRows.count)"])
        }
        // Their shared budgets: the settlement the stopped process could not make (a reaper that
        // took the hold meanwhile found no row and charged nothing). Idempotent: an already
        // charged call changes nothing.
        if let sharedQuotas {
            for row in recovered.keptRows where row.cost > .zero || row.usage.totalTokens > 0 {
                _ = try? sharedQuotas.settle(callID: row.id, cost: row.cost, tokens: row.usage.totalTokens,
                                             on: MultiThreadedEventLoopGroup.singleton.next()).wait()
            }
        }
        let journal = InFlightJournal(databasePath: journalBase)
        let keys: any APIKeyStore
        do {
            keys = try backend.openKeys()
        } catch {
            journal.stop()
            ledger.close()
            throw error
        }
        let principals = try PrincipalDirectory(keyStore: keys, logger: logger)
        let upstream = UpstreamClient(logger: logger)
        let automaticCap = DescriptorLimit.automaticConnectionCap(descriptors: DescriptorLimit.current)
        let connections = OpenConnections(limit: { policies.policy.gateway.maxConnections ?? automaticCap },
                                          logger: logger)
        let context = GatewayContext(policies: policies, principals: principals, upstream: upstream,
                                     ledger: ledger, logger: logger, enforcer: enforcer, metrics: metrics,
                                     ledgerHealth: ledgerHealth, journal: journal, connections: connections)
        let admin: AdminAPI
        // Budgets continue where the ledger says they are: a restart neither resets nor double-counts.
        do {
            let reader = try backend.openSource()
            defer { reader.close() }
            let now = UnixTime.nowMicros()
            try context.enforcer.rebuild(from: reader, plans: policy.plans, now: now)
            try metrics.restoreActivity(from: reader, timeZone: policy.plans.timeZone, now: now)
            admin = try AdminAPI(gateway: context, ledger: backend, keys: keys)
        } catch {
            upstream.shutdown()
            journal.stop()
            ledger.close()
            throw error
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
        do {
            let channel = try ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { channel in
                    guard connections.admit(channel) else {
                        return channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(OpenConnections.Refused())
                        }
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false,
                                                                                   withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(ProxyHandler(gateway: context, admin: admin,
                                                                                   eventLoop: channel.eventLoop))
                    }
                }
                .bind(host: configuration.host, port: configuration.port)
                .wait()
            principals.startPolling()
            policies.startWatching()
            let quotaReaper = sharedQuotas.map {
                QuotaReaper(book: $0, on: group.next()) { [ledgerHealth = context.ledgerHealth] in ledgerHealth.heartbeat($0) }
            }
            quotaReaper?.start()
            // A SQLite ledger's file deleted or replaced while open: fail closed, say so (1 s looks).
            let fileWatch = backend.recordedFile(configuration).flatMap(LedgerFileIdentity.init(path:)).map { identity in
                group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) {
                    [ledgerHealth = context.ledgerHealth] _ in ledgerHealth.fileChecked(identity.problem())
                }
            }
            let allocatingThreads: [MemoryReturn.Thread] = group.makeIterator().map { loop in { @Sendable work in loop.execute(work) } }
                + [{ @Sendable work in upstream.onCurlThread(work) }]
            let memory = MemoryReturn(on: group.next(), allocatingThreads: allocatingThreads) {
                enforcer.concurrency.totalInFlight
            }
            return GatewayServer(port: channel.localAddress?.port ?? configuration.port,
                                 host: configuration.host, group: group, channel: channel, context: context,
                                 keys: keys, admin: admin,
                                 sharedQuotas: sharedQuotas, quotaReaper: quotaReaper, memory: memory,
                                 serverLock: serverLock, fileWatch: fileWatch)
        } catch {
            admin.shutdown()
            upstream.shutdown()
            journal.stop()
            ledger.close()
            try? group.syncShutdownGracefully()
            throw error
        }
    }

    private init(port: Int, host: String, group: MultiThreadedEventLoopGroup, channel: any Channel,
                 context: GatewayContext, keys: any APIKeyStore, admin: AdminAPI,
                 sharedQuotas: SharedQuotaBook?, quotaReaper: QuotaReaper?, memory: MemoryReturn,
                 serverLock: LedgerServerLock?, fileWatch: RepeatedTask?) {
        self.serverLock = serverLock
        self.fileWatch = fileWatch
        self.sharedQuotas = sharedQuotas
        self.quotaReaper = quotaReaper
        self.memory = memory
        self.keys = keys
        self.admin = admin
        self.port = port
        self.host = host
        self.group = group
        self.channel = channel
        self.context = context
    }

    /// An IPv6 address goes in brackets (`http://[::1]:8080`).
    public var baseURL: String { host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)" }

    /// Returns once every call answered so far is in the ledger's database, where reports read
    /// it (answers go out once a row is in the ledger's journal: `LedgerJournal`).
    public func flushLedger() { context.ledger.flush() }

    /// Graceful stop (SIGTERM): stops accepting and closes idle connections, lets calls in
    /// flight finish for up to `timeout` (their connections close after the answer), then
    /// `shutdown()`: whatever is still running is cancelled and recorded as `interrupted`.
    /// Blocks; returns once the ledger is closed, with how many calls the timeout cut.
    @discardableResult
    public func drain(timeout: Duration) -> Int {
        try? channel.close().wait()
        context.connections.drain()
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline && (callsInFlight > 0 || context.ledger.backlog > 0) {
            Thread.sleep(forTimeInterval: 0.01)
        }
        let cut = callsInFlight
        try? shutdown()
        return cut
    }

    /// Stops accepting, cancels what is still in flight (each cancelled call is recorded),
    /// then flushes and closes the ledger.
    public func shutdown() throws {
        let first = stopped.withLockedValue { wasStopped in
            defer { wasStopped = true }
            return !wasStopped
        }
        guard first else { return wait() }
        defer {
            stoppedCondition.lock()
            stoppedCondition.unlock(withValue: 1)
        }
        context.stopping.withLockedValue { $0 = true }
        try? channel.close().wait()
        context.principals.stopPolling()
        fileWatch?.cancel()
        context.policies.stopWatching()
        context.upstream.shutdown()
        context.providerGates.refuseWaiters(Refusal(.shuttingDown, "The gateway stopped while the call waited for its provider; retry it."))
        // Cancelled calls settle on their loops; one between attempts (a retry's backoff) ends
        // when its timer fires and sees `stopping`. Wait, bounded, until every call has its row queued.
        let deadline = ContinuousClock.now + .seconds(5)
        while callsInFlight > 0 && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.01) }
        runPendingLoopWork()
        admin.shutdown()
        context.metrics.shutdown()
        // Commits what is queued; a failing ledger gets a few attempts, then its rows fail
        // (never a wait without end). No flush first: it would wait for a failing ledger forever.
        context.ledger.close()
        runPendingLoopWork()  // the commit callbacks drop the start markers of recorded calls
        let kept = context.journal.stop()  // keeps the calls left without a row, for the next start
        left.withLockedValue { $0 = kept }
        keys.close()
        serverLock?.release()
        // Settlements still on their way fail here; the other replicas reap those holds at once
        // (this replica's heartbeat is removed) and charge them from the ledger.
        quotaReaper?.stop()
        memory.stop()
        try? sharedQuotas?.shutdown(on: group.next()).wait()
        let loopsStopped = Result { try group.syncShutdownGracefully() }
        // The open windows' unrecorded refusals (their timers went with the loops, which served
        // open connections until now).
        for refusals in [context.unknownCallers, context.unknownAdminCallers] { refusals.summarise(now: UnixTime.nowMicros()) }
        try loopsStopped.get()
    }

    /// Lets every event loop run what is already queued on it.
    private func runPendingLoopWork() {
        for loop in group.makeIterator() {
            try? loop.submit {}.wait()
        }
    }

    /// Reloads the policy directory now (SIGHUP); false if the change was refused.
    @discardableResult
    public func reloadPolicy() -> Bool { context.policies.reloadNow() }

    /// Admitted calls not yet ended.
    public var callsInFlight: Int { context.enforcer.concurrency.totalInFlight }

    /// After `shutdown()`: the calls left without a row, which the in-flight journal keeps for
    /// the next start to record (with their final row, or as `interrupted`).
    public var leftForNextStart: (withRow: Int, markersOnly: Int) { left.withLockedValue { $0 } }
    private let left = NIOLockedValueBox((withRow: 0, markersOnly: 0))

    /// Quota reservations of calls in flight (each is settled when its call ends).
    public var openQuotaReservations: Int { context.enforcer.openReservations }

    /// The policy in force.
    public var policy: PolicySet { context.policies.policy }

    /// Blocks until `shutdown()` has finished: every call in flight recorded, the ledger closed.
    public func wait() {
        stoppedCondition.lock(whenValue: 1)
        stoppedCondition.unlock()
    }
}

private extension LedgerBackend {
    /// The SQLite file this server records to (nil: PostgreSQL, or `--no-ledger`).
    func recordedFile(_ configuration: GatewayConfiguration) -> String? {
        configuration.recordCalls ? sqlitePath : nil
    }
}

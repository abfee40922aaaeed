import Ledger
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// A replica's background duties for the shared quota state, on one event loop: heartbeat every
/// `heartbeatInterval`, reap every `reapInterval` (holds of replicas not seen for
/// `replicaTimeout`, or past `holdExpiry`, are removed and charged from the ledger), and prune
/// old counters about every ten minutes. Every replica runs one, so the state recovers as long
/// as any replica lives; concurrent reapers skip each other's holds (`SKIP LOCKED`).
public final class QuotaReaper: Sendable {
    private let book: SharedQuotaBook
    private let loop: any EventLoop
    private let tasks = Mutex<[RepeatedTask]>([])
    private let reapRuns = Mutex(0)
    /// Told each heartbeat's outcome (nil: it got through), so the gateway can stop admitting
    /// calls while PostgreSQL is unreachable rather than find out call by call.
    private let onHeartbeat: (@Sendable ((any Error)?) -> Void)?

    public init(book: SharedQuotaBook, on loop: any EventLoop, onHeartbeat: (@Sendable ((any Error)?) -> Void)? = nil) {
        self.book = book
        self.loop = loop
        self.onHeartbeat = onHeartbeat
    }

    /// Starts the heartbeat and the reaper (the first of each at once: the heartbeat `prepare`
    /// sent may be most of `replicaTimeout` old by the time serving starts).
    public func start() {
        let settings = book.settings
        let heartbeat = loop.scheduleRepeatedAsyncTask(initialDelay: .zero,
                                                       delay: TimeAmount(settings.heartbeatInterval)) { [book, loop, onHeartbeat] _ in
            book.heartbeat(on: loop).map { onHeartbeat?(nil) }.recover { error in
                book.logger.warning("shared quota heartbeat failed", metadata: ["error": "\(String(reflecting: error))"])
                onHeartbeat?(error)
            }
        }
        let reaper = loop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: TimeAmount(settings.reapInterval)) { [self] _ in
            reapAndPrune().map { _ in }.recover { [book] error in
                book.logger.warning("shared quota reaper failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
        tasks.withLock { $0 += [heartbeat, reaper] }
    }

    /// Stops both (a replica shutting down, or a test simulating a dead one).
    public func stop() {
        for task in tasks.withLock({ tasks in defer { tasks = [] }; return tasks }) { task.cancel() }
    }

    /// One reaper run now: (holds reaped, of which charged from a ledger row).
    public func reap() -> EventLoopFuture<(reaped: Int, charged: Int)> {
        let logger = book.logger, timeout = book.settings.replicaTimeoutMicros
        return book.connections.withConnection(on: loop, answerTimeout: book.settings.statementTimeout) { connection in
            connection.query("SELECT o_reaped, o_charged FROM tokenctl_quota_reap(\(timeout)::int8)", logger: logger)
        }.flatMapThrowing { result in
            guard let row = result.rows.first else { return (0, 0) }
            let (reaped, charged) = try row.decode((Int, Int).self)
            if reaped > 0 {
                logger.notice("reaped shared quota holds of dead replicas or past expiry",
                              metadata: ["holds": "\(reaped)", "charged_from_ledger": "\(charged)"])
            }
            return (reaped, charged)
        }
    }

    private func reapAndPrune() -> EventLoopFuture<(reaped: Int, charged: Int)> {
        let run = reapRuns.withLock { runs in defer { runs += 1 }; return runs }
        let reaped = reap()
        let every = max(1, Int(600 / max(1, book.settings.reapInterval.components.seconds)))
        guard run % every == every - 1 else { return reaped }
        return reaped.flatMap { [book, loop] counts in
            book.prune(now: UnixTime.nowMicros(), on: loop).map { counts }
        }
    }
}

extension SharedQuotaBook {
    /// Drops counters of periods that ended long ago (nothing held), reap records older than
    /// any call, and replicas gone for a day.
    func prune(now: Int64, on loop: any EventLoop) -> EventLoopFuture<Void> {
        // 70 days: two months' buckets back, so no current or just-ended period is touched.
        let before = now - 70 * 86_400_000_000, logger = self.logger
        return connections.withConnection(on: loop, answerTimeout: settings.statementTimeout) { connection in
            connection.query("SELECT tokenctl_quota_prune(\(before)::int8)", logger: logger).map { _ in }
        }
    }
}

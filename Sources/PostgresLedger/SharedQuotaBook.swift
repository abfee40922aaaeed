import Foundation
import Ledger
import Logging
import Metering
import NIOCore
import NIOPosix
import Policy
import PostgresNIO
import Synchronization

/// Budgets shared by every replica of the gateway, kept in PostgreSQL: the multi-replica
/// counterpart of `QuotaBook`, with the same promise (invariant 3): admission reserves a call's
/// worst case against every budget that applies (user, team, org × day, week, month in the
/// policy's time zone), all or none, and settlement replaces it with the actual spend. So
/// `spent + reserved ≤ limit` holds for each budget across all replicas, under the counters' row
/// locks — no overshoot beyond the single-node bound (a call that spends more than it reserved).
///
/// Each operation is one round trip to one function (`SharedQuotaSchema`), on a connection of
/// the caller's event loop; the result arrives there (no Task per call). Under load, the
/// reservations of a loop that queue while one is in flight go together in the next round trip;
/// so do its settlements (`LoopBatches`).
///
/// **Replica failure.** Every replica heartbeats (`quota_replicas`) and reaps (`QuotaReaper`):
/// holds of a replica not seen for `replicaTimeout`, or older than `holdExpiry`, are removed,
/// and a call whose ledger row exists is charged what the row says (it committed, then its
/// replica died before settling). A dead replica's holds are gone within `replicaTimeout +
/// reapInterval` of its last heartbeat.
public final class SharedQuotaBook: Sendable {
    /// This process, as its holds and heartbeats name it. Unique per process (a restarted
    /// replica is a new one: the old one's holds are reaped, not inherited).
    public let replica: String
    public let settings: SharedQuotaSettings
    let connections: SharedQuotaConnections
    private let reservations: ReservationBatches
    private let settlements: SettlementBatches
    let logger: Logger
    private let clocks = Mutex<[PeriodClock]>([])
    private let lastFailureLog = Mutex<Int64>(.min / 2)
    private let heldHere = Mutex(0)

    /// Reservations this replica made and has not settled or released yet (for its metrics; the
    /// holds of all replicas are in `quota_holds`, see `openHolds`).
    public var openReservations: Int { heldHere.withLock { $0 } }

    /// Statements that carried reservations so far: fewer than the reservations under load, as
    /// those made while one is in flight on their loop go together (tests read it).
    public var reservationStatements: Int { reservations.statements }

    /// Statements that carried settlements so far (as `reservationStatements`).
    public var settlementStatements: Int { settlements.statements }

    public convenience init(location: PostgresLocation, replica: String = SharedQuotaBook.processReplicaName(),
                            settings: SharedQuotaSettings = SharedQuotaSettings(), logger: Logger) {
        self.init(configuration: location.connectionConfiguration, replica: replica, settings: settings, logger: logger)
    }

    /// With a connection configuration of one's own (e.g. a `search_path` startup parameter).
    public init(configuration: PostgresConnection.Configuration, replica: String = SharedQuotaBook.processReplicaName(),
                settings: SharedQuotaSettings = SharedQuotaSettings(), logger: Logger) {
        self.replica = replica
        self.settings = settings
        self.logger = logger
        var configuration = configuration
        configuration.options.connectTimeout = TimeAmount(settings.answerTimeout)
        connections = SharedQuotaConnections(configuration: configuration, answerTimeout: settings.answerTimeout,
                                             statementTimeout: settings.statementTimeout,
                                             perLoop: settings.connectionsPerLoop, logger: logger)
        reservations = ReservationBatches(replica: replica, holdSeconds: settings.holdExpirySeconds,
                                          connections: connections, logger: logger)
        settlements = SettlementBatches(connections: connections, logger: logger)
    }

    /// `host:pid:random`: readable in `quota_holds`, unique across restarts.
    public static func processReplicaName() -> String {
        let host = ProcessInfo.processInfo.hostName
        return "\(host):\(getpid()):\(UInt32.random(in: 0...UInt32.max))"
    }

    // MARK: Start and stop

    /// Installs the tables, and the functions unless a newer version of them is there
    /// (idempotent, serialised across replicas), then sends the first heartbeat. Run before
    /// serving: a replica's holds are reaped unless it heartbeats.
    public func prepare(on loop: any EventLoop) -> EventLoopFuture<Void> {
        let logger = self.logger
        // Waits for another replica installing the same (the lock): the slower deadline.
        return connections.withConnection(on: loop, answerTimeout: settings.statementTimeout) { connection in
            @Sendable func run(_ statements: [String]) -> EventLoopFuture<Void> {
                statements.reduce(connection.eventLoop.makeSucceededVoidFuture()) { step, statement in
                    step.flatMap { connection.query(PostgresQuery(unsafeSQL: statement), logger: logger).map { _ in } }
                }
            }
            let name = SharedQuotaSchema.functionsVersionName, ours = SharedQuotaSchema.functionsVersion
            return run(["BEGIN", "SELECT pg_advisory_xact_lock(\(SharedQuotaSchema.installLock))"] + SharedQuotaSchema.tables)
                .flatMap { connection.query("SELECT value FROM quota_meta WHERE name = \(name)", logger: logger) }
                .flatMapThrowing { try $0.rows.first?.decode(Int64.self) }
                .flatMap { installed -> EventLoopFuture<Void> in
                    if let installed, installed > ours {
                        logger.notice("shared quota functions of a newer tokenctl are installed; this replica uses them",
                                      metadata: ["installed": "\(installed)", "own": "\(ours)"])
                        return connection.eventLoop.makeSucceededVoidFuture()
                    }
                    return run(SharedQuotaSchema.functions).flatMap {
                        connection.query("""
                            INSERT INTO quota_meta (name, value) VALUES (\(name), \(ours))
                            ON CONFLICT (name) DO UPDATE SET value = excluded.value
                            """, logger: logger).map { _ in }
                    }
                }
                .flatMap { connection.query("COMMIT", logger: logger).map { _ in } }
                .flatMapError { error in
                    connection.query("ROLLBACK", logger: logger).map { _ in }.flatMapErrorThrowing { _ in }
                        .flatMapThrowing { throw error }
                }
        }.flatMap { self.heartbeat(on: loop) }
    }

    /// Marks this replica alive (`quota_replicas.seen_at = now()`).
    public func heartbeat(on loop: any EventLoop) -> EventLoopFuture<Void> {
        let replica = self.replica, logger = self.logger
        return connections.withConnection(on: loop) { connection in
            connection.query("""
                INSERT INTO quota_replicas (replica, seen_at) VALUES (\(replica), now())
                ON CONFLICT (replica) DO UPDATE SET seen_at = excluded.seen_at
                """, logger: logger).map { _ in }
        }
    }

    /// Removes this replica's heartbeat (a clean stop: any hold left is reaped at once by the
    /// other replicas) and closes the connections.
    public func shutdown(on loop: any EventLoop) -> EventLoopFuture<Void> {
        let replica = self.replica, logger = self.logger
        return connections.withConnection(on: loop) { connection in
            connection.query("DELETE FROM quota_replicas WHERE replica = \(replica)", logger: logger).map { _ in }
        }
        .flatMapErrorThrowing { _ in }
        .flatMap { _ in EventLoopFuture.andAllComplete(self.connections.close(), on: loop) }
    }

    // MARK: Reserve, settle, release

    /// Reserves `cost` and `tokens` (the call's worst case) against every tracked budget in
    /// `budgets`, as the hold of `callID` (the id of the call's ledger row: the reaper looks the
    /// row up), or refuses with the first budget, in order, that the call would exceed — the
    /// same answer as `QuotaBook.reserve`. The periods are those containing `now` (the gateway
    /// passes the call's `started_at`, which the ledger's sums go by).
    ///
    /// Fails (the caller fails closed) if PostgreSQL cannot be reached or does not answer within
    /// `answerTimeout`, so a refused call must hold nothing: a reservation that lands after that
    /// is released at once; one that was sent and failed may still land (only its answer was
    /// lost, or it waits on the server), so it is released at once and again once the server
    /// has certainly ended it (`statementTimeout` later). Releasing is idempotent. An error the
    /// server answered ended the statement, rolled back: nothing landed, nothing to release
    /// (and a release would free another hold of the same call id, were there one).
    public func reserve(callID: String, budgets: [BudgetLimit], cost: Money, tokens: Int, now: Int64,
                        holdAtLeast: Int64 = 0, timeZone: TimeZone, on loop: any EventLoop)
        -> EventLoopFuture<Result<SharedQuotaReservation, QuotaRefusal>> {
        let answer = loop.makePromise(of: Result<SharedQuotaReservation, QuotaRefusal>.self)
        let timeout = settings.answerTimeout
        // All three closures run on `loop`: the timer, the sending, and the answer hopped there.
        // A reservation still queued when the timer fires is not sent (`Abandonment`).
        let timedOut = Abandonment()
        let sent = NIOLoopBoundBox.makeBoxSendingValue(false, eventLoop: loop)
        let timer = loop.scheduleTask(in: TimeAmount(timeout)) {
            timedOut.set()
            answer.fail(SharedQuotaError.noAnswer(timeout))
        }
        reserveNow(callID: callID, budgets: budgets, cost: cost, tokens: tokens, now: now, holdAtLeast: holdAtLeast,
                   timeZone: timeZone, sent: sent, abandonment: timedOut, on: loop)
            .hop(to: loop)
            .whenComplete { [self] result in
                timer.cancel()
                switch result {
                case .success(.success(let held)) where held.holdsBudget:
                    // Landed after the call was refused for want of an answer: given back.
                    if timedOut.isSet { releaseRetrying(callID: callID, on: loop) }
                case .success:
                    break  // refused, or no budget applied: nothing held
                case .failure(let error):
                    if !timedOut.isSet { logFailure(error) }
                    if sent.value, (error as? PSQLError)?.code != .server {
                        releaseRetrying(callID: callID, on: loop)
                        loop.scheduleTask(in: TimeAmount(settings.statementTimeout + .seconds(1))) {
                            self.releaseRetrying(callID: callID, on: loop)
                        }
                    }
                }
                guard !timedOut.isSet else { return }
                if case .success(.success(let held)) = result, held.holdsBudget { heldHere.withLock { $0 += 1 } }
                answer.completeWith(result)
            }
        return answer.futureResult.always { [self] result in
            if case .failure(SharedQuotaError.noAnswer) = result { logFailure(SharedQuotaError.noAnswer(timeout)) }
        }
    }

    /// Logs why PostgreSQL failed a reservation, at most once per 10 s (an outage fails every call).
    private func logFailure(_ error: any Error) {
        let now = UnixTime.nowMicros()
        let due = lastFailureLog.withLock { last in
            guard now - last >= 10_000_000 else { return false }
            last = now
            return true
        }
        if due {
            logger.error("shared quota reservation failed: calls are refused until PostgreSQL answers",
                         metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// `sent` turns true (on `loop`) once the reservation goes to a connection.
    private func reserveNow(callID: String, budgets: [BudgetLimit], cost: Money, tokens: Int, now: Int64,
                            holdAtLeast: Int64, timeZone: TimeZone, sent: NIOLoopBoundBox<Bool>, abandonment: Abandonment,
                            on loop: any EventLoop)
        -> EventLoopFuture<Result<SharedQuotaReservation, QuotaRefusal>> {
        let cost = max(cost, .zero), tokens = max(tokens, 0)
        let tracked = budgets.filter(\.isTracked)
        let intervals = periodIntervals(tracked, now: now, timeZone: timeZone)
        let reservation = SharedQuotaReservation(callID: callID, cost: cost, tokens: tokens, standings: [],
                                                 holdsBudget: false)
        guard !tracked.isEmpty else { return loop.makeSucceededFuture(.success(reservation)) }
        let request = ReservationBatches.Reservation(
            callID: callID,
            budgets: zip(tracked, intervals).map { budget, interval in
                ReservationBatches.Budget(scope: budget.scope.sharedKey, period: budget.period.rawValue,
                                          start: interval.start, end: interval.end,
                                          usd: budget.usd.map { max(0, $0.picodollars) } ?? -1,
                                          tokens: budget.tokens.map { Int64(max(0, $0)) } ?? -1)
            },
            picodollars: cost.picodollars, tokens: Int64(tokens),
            holdSeconds: holdAtLeast / 1_000_000 + 1, sent: sent, abandonment: abandonment,
            answer: loop.makePromise(of: [BucketStanding].self))
        return reservations.reserve(request, on: loop).flatMapThrowing { rows in
            guard rows.count == tracked.count, rows.enumerated().allSatisfy({ $0.element.ord == $0.offset + 1 }) else {
                throw SharedQuotaError.unexpectedAnswer("tokenctl_quota_reserve_many returned \(rows.count) rows for \(tracked.count) budgets")
            }
            if let index = rows.firstIndex(where: { $0.refused != nil }) {
                let row = rows[index]
                return .failure(QuotaRefusal(
                    limit: tracked[index], exceeded: row.refused == "tokens" ? .tokens : .usd,
                    spent: Money(picodollars: row.spent), reserved: Money(picodollars: row.reserved),
                    spentTokens: Int(clamping: row.spentTokens), reservedTokens: Int(clamping: row.reservedTokens),
                    requested: cost, requestedTokens: tokens,
                    periodStart: intervals[index].start, resetsAt: intervals[index].end))
            }
            // What was left of each budget when this call was admitted (its own hold not counted).
            let standings = zip(tracked, zip(rows, intervals)).map { budget, pair in
                let (row, interval) = pair
                return QuotaStanding(
                    limit: budget,
                    usdLeft: budget.usd.map { Money(picodollars: max(0, $0.picodollars &- row.spent &- row.reserved)) },
                    tokensLeft: budget.tokens.map { Int(clamping: max(0, Int64($0) &- row.spentTokens &- row.reservedTokens)) },
                    resetsAt: interval.end)
            }
            return .success(SharedQuotaReservation(callID: callID, cost: cost, tokens: tokens, standings: standings,
                                                   holdsBudget: true))
        }
    }

    /// Replaces the call's hold with its actual `cost` and `tokens`, in the periods it was
    /// reserved in. Run once the call's ledger row has committed. True if it changed anything
    /// (false: already settled, released, or reaped and charged from the ledger). Sent with the
    /// other settlements of its event loop that queue while one is in flight (`SettlementBatches`).
    public func settle(callID: String, cost: Money, tokens: Int, on loop: any EventLoop) -> EventLoopFuture<Bool> {
        settlements.settle(callID: callID, picodollars: max(cost, .zero).picodollars, tokens: Int64(max(tokens, 0)),
                           on: loop)
    }

    /// Removes the call's hold without spending (the call never reached the provider).
    public func release(callID: String, on loop: any EventLoop) -> EventLoopFuture<Bool> {
        settle(callID: callID, cost: .zero, tokens: 0, on: loop)
    }

    /// `settle`, retried a few times when PostgreSQL cannot be reached (a hold that is never
    /// settled strands its budget until `holdExpiry`); logs the final failure.
    public func settleRetrying(_ reservation: SharedQuotaReservation, cost: Money, tokens: Int, on loop: any EventLoop) {
        guard reservation.holdsBudget else { return }
        heldHere.withLock { $0 -= 1 }
        settleRetrying(callID: reservation.callID, cost: cost, tokens: tokens, on: loop, attemptsLeft: 3)
    }

    /// Releases the hold a failed reservation may have left (the function ran, its answer was
    /// lost), retried like a settlement: a release is idempotent, and a no-op if nothing landed.
    /// Its final failure is logged at debug level only: the failed reservation was logged.
    private func releaseRetrying(callID: String, on loop: any EventLoop) {
        settleRetrying(callID: callID, cost: .zero, tokens: 0, on: loop, attemptsLeft: 3, failureLevel: .debug)
    }

    private func settleRetrying(callID: String, cost: Money, tokens: Int, on loop: any EventLoop, attemptsLeft: Int,
                                failureLevel: Logger.Level = .error) {
        settle(callID: callID, cost: cost, tokens: tokens, on: loop).whenFailure { [self] error in
            guard attemptsLeft > 1 else {
                logger.log(level: failureLevel,
                           "shared quota settlement failed; the hold is reaped at its expiry, charged from the ledger",
                           metadata: ["call": "\(callID)", "error": "\(String(reflecting: error))"])
                return
            }
            loop.scheduleTask(in: .seconds(1)) {
                self.settleRetrying(callID: callID, cost: cost, tokens: tokens, on: loop, attemptsLeft: attemptsLeft - 1,
                                    failureLevel: failureLevel)
            }
        }
    }

    // MARK: Periods

    /// The current interval of each budget's period, from a cached clock per time zone.
    func periodIntervals(_ budgets: [BudgetLimit], now: Int64, timeZone: TimeZone) -> [PeriodInterval] {
        clocks.withLock { clocks in
            let identifier = timeZone.identifier
            let index: Int
            if let found = clocks.firstIndex(where: { $0.identifier == identifier }) {
                index = found
            } else {
                if clocks.count >= 4 { clocks.removeFirst() }
                clocks.append(PeriodClock(CalendarPeriod(timeZone: timeZone)))
                index = clocks.count - 1
            }
            return budgets.map { clocks[index].interval(of: $0.period, containing: now) }
        }
    }
}

/// What a shared reservation holds: handed back to `SharedQuotaBook.settle` by call id.
public struct SharedQuotaReservation: Sendable, Hashable {
    /// The call's ledger row id: the hold's key in `quota_holds`.
    public let callID: String
    /// The worst-case cost and tokens held.
    public let cost: Money
    public let tokens: Int
    /// What was left of each tracked budget when the call was admitted (for response headers).
    public let standings: [QuotaStanding]
    /// False when no budget applied: nothing is held in PostgreSQL, nothing to settle.
    public let holdsBudget: Bool
}

extension PayerScope {
    /// The scope as `quota_counters.scope` spells it: `user:NAME`, `team:NAME`, `org`.
    var sharedKey: String {
        switch self {
        case .user(let name): return "user:" + name
        case .team(let name): return "team:" + name
        case .org: return "org"
        }
    }
}

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
/// Each operation is one round trip to one plpgsql function (`SharedQuotaSchema`), on a
/// connection of the caller's event loop; the result arrives there (no Task per call).
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
    let logger: Logger
    private let clocks = Mutex<[PeriodClock]>([])
    private let lastFailureLog = Mutex<Int64>(.min / 2)
    private let heldHere = Mutex(0)

    /// Reservations this replica made and has not settled or released yet (for its metrics; the
    /// holds of all replicas are in `quota_holds`, see `openHolds`).
    public var openReservations: Int { heldHere.withLock { $0 } }

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
        configuration.options.connectTimeout = SharedQuotaSettings.amount(settings.answerTimeout)
        connections = SharedQuotaConnections(configuration: configuration, perLoop: settings.connectionsPerLoop,
                                             logger: logger)
    }

    /// `host:pid:random`: readable in `quota_holds`, unique across restarts.
    public static func processReplicaName() -> String {
        let host = ProcessInfo.processInfo.hostName
        return "\(host):\(getpid()):\(UInt32.random(in: 0...UInt32.max))"
    }

    // MARK: Start and stop

    /// Installs the tables and functions (idempotent, serialised across replicas) and sends the
    /// first heartbeat. Run before serving: a replica's holds are reaped unless it heartbeats.
    public func prepare(on loop: any EventLoop) -> EventLoopFuture<Void> {
        let logger = self.logger
        return connections.withConnection(on: loop) { connection in
            var step = connection.query("BEGIN", logger: logger).map { _ in }
            step = step.flatMap { connection.query("SELECT pg_advisory_xact_lock(\(SharedQuotaSchema.installLock))", logger: logger).map { _ in } }
            for statement in SharedQuotaSchema.statements {
                step = step.flatMap { connection.query(PostgresQuery(unsafeSQL: statement), logger: logger).map { _ in } }
            }
            return step.flatMap { connection.query("COMMIT", logger: logger).map { _ in } }
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
    /// same answer as `QuotaBook.reserve`. Fails (the caller fails closed) if PostgreSQL cannot
    /// be reached or does not answer within `answerTimeout`; a reservation that lands after
    /// that is released at once, so a refused call holds nothing.
    public func reserve(callID: String, budgets: [BudgetLimit], cost: Money, tokens: Int, now: Int64,
                        timeZone: TimeZone, on loop: any EventLoop)
        -> EventLoopFuture<Result<SharedQuotaReservation, QuotaRefusal>> {
        let answer = loop.makePromise(of: Result<SharedQuotaReservation, QuotaRefusal>.self)
        let timeout = settings.answerTimeout
        // Both closures run on `loop`: the timer, and the answer hopped there.
        let timedOut = NIOLoopBoundBox.makeBoxSendingValue(false, eventLoop: loop)
        let timer = loop.scheduleTask(in: SharedQuotaSettings.amount(timeout)) {
            timedOut.value = true
            answer.fail(SharedQuotaError.noAnswer(timeout))
        }
        reserveNow(callID: callID, budgets: budgets, cost: cost, tokens: tokens, now: now, timeZone: timeZone, on: loop)
            .hop(to: loop)
            .whenComplete { [self] result in
                timer.cancel()
                guard !timedOut.value else {
                    // The call was refused meanwhile: a reservation that landed late is given back.
                    if case .success(.success) = result { release(callID: callID, on: loop).whenComplete { _ in } }
                    return
                }
                switch result {
                case .failure(let error): logFailure(error)
                case .success(.success(let held)) where held.holdsBudget: heldHere.withLock { $0 += 1 }
                case .success: break
                }
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

    private func reserveNow(callID: String, budgets: [BudgetLimit], cost: Money, tokens: Int, now: Int64,
                            timeZone: TimeZone, on loop: any EventLoop)
        -> EventLoopFuture<Result<SharedQuotaReservation, QuotaRefusal>> {
        let cost = max(cost, .zero), tokens = max(tokens, 0)
        let tracked = budgets.filter(\.isTracked)
        let intervals = periodIntervals(tracked, now: now, timeZone: timeZone)
        let reservation = SharedQuotaReservation(callID: callID, cost: cost, tokens: tokens, standings: [],
                                                 holdsBudget: false)
        guard !tracked.isEmpty else { return loop.makeSucceededFuture(.success(reservation)) }
        var scopes: [String] = [], periods: [String] = [], starts: [Int64] = [], ends: [Int64] = []
        var usd: [Int64] = [], limits: [Int64] = []
        for (budget, interval) in zip(tracked, intervals) {
            scopes.append(budget.scope.sharedKey)
            periods.append(budget.period.rawValue)
            starts.append(interval.start)
            ends.append(interval.end)
            usd.append(budget.usd.map { max(0, $0.picodollars) } ?? -1)
            limits.append(budget.tokens.map { Int64(max(0, $0)) } ?? -1)
        }
        let replica = self.replica, logger = self.logger, holdSeconds = settings.holdExpirySeconds
        let picodollars = cost.picodollars, tokenCount = Int64(tokens)
        let query: PostgresQuery = """
            SELECT o_ord, o_spent, o_reserved, o_spent_tokens, o_reserved_tokens, o_refused
            FROM tokenctl_quota_reserve(\(callID), \(replica), \(scopes)::text[], \(periods)::text[],
                \(starts)::int8[], \(ends)::int8[], \(usd)::int8[], \(limits)::int8[],
                \(picodollars)::int8, \(tokenCount)::int8, \(holdSeconds)::int8)
            """
        return connections.withConnection(on: loop) { connection in
            connection.query(query, logger: logger)
        }.flatMapThrowing { result in
            var rows: [BucketStanding] = []
            for row in result.rows {
                let (ord, spent, reserved, spentTokens, reservedTokens, refused)
                    = try row.decode((Int, Int64, Int64, Int64, Int64, String?).self)
                rows.append(BucketStanding(ord: ord, spent: spent, reserved: reserved, spentTokens: spentTokens,
                                           reservedTokens: reservedTokens, refused: refused))
            }
            guard rows.count == tracked.count, rows.enumerated().allSatisfy({ $0.element.ord == $0.offset + 1 }) else {
                throw SharedQuotaError.unexpectedAnswer("tokenctl_quota_reserve returned \(rows.count) rows for \(tracked.count) budgets")
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
    /// (false: already settled, released, or reaped and charged from the ledger).
    public func settle(callID: String, cost: Money, tokens: Int, on loop: any EventLoop) -> EventLoopFuture<Bool> {
        let logger = self.logger, picodollars = max(cost, .zero).picodollars, tokenCount = Int64(max(tokens, 0))
        return connections.withConnection(on: loop) { connection in
            connection.query("SELECT tokenctl_quota_settle(\(callID), \(picodollars)::int8, \(tokenCount)::int8)",
                             logger: logger)
        }.flatMapThrowing { result in
            guard let row = result.rows.first else { throw SharedQuotaError.unexpectedAnswer("tokenctl_quota_settle returned no row") }
            return try row.decode(Bool.self)
        }
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

    private func settleRetrying(callID: String, cost: Money, tokens: Int, on loop: any EventLoop, attemptsLeft: Int) {
        settle(callID: callID, cost: cost, tokens: tokens, on: loop).whenFailure { [self] error in
            guard attemptsLeft > 1 else {
                logger.error("shared quota settlement failed; the hold is reaped at its expiry, charged from the ledger",
                             metadata: ["call": "\(callID)", "error": "\(String(reflecting: error))"])
                return
            }
            loop.scheduleTask(in: .seconds(1)) {
                self.settleRetrying(callID: callID, cost: cost, tokens: tokens, on: loop, attemptsLeft: attemptsLeft - 1)
            }
        }
    }

    // MARK: Reading

    /// One counter's sums (for tests and the admin API): nil if no call has reserved in that
    /// period yet.
    public func counter(scope: PayerScope, period: BudgetPeriod, periodStart: Int64,
                        on loop: any EventLoop) -> EventLoopFuture<SharedQuotaCounter?> {
        let logger = self.logger, key = scope.sharedKey, name = period.rawValue
        return connections.withConnection(on: loop) { connection in
            connection.query("""
                SELECT spent::text, reserved::text, spent_tokens::text, reserved_tokens::text FROM quota_counters
                WHERE scope = \(key) AND period = \(name) AND period_start = \(periodStart)
                """, logger: logger)
        }.flatMapThrowing { result in
            guard let row = result.rows.first else { return nil }
            let (spent, reserved, spentTokens, reservedTokens) = try row.decode((String, String, String, String).self)
            guard let a = Int128(spent), let b = Int128(reserved), let c = Int128(spentTokens), let d = Int128(reservedTokens) else {
                throw SharedQuotaError.unexpectedAnswer("quota_counters holds a non-integer amount")
            }
            return SharedQuotaCounter(spent: a, reserved: b, spentTokens: c, reservedTokens: d)
        }
    }

    /// What is left of each tracked budget in its current period, in order (for the admin API).
    /// A budget no call has reserved against in this period yet is read from the ledger.
    public func remaining(budgets: [BudgetLimit], now: Int64, timeZone: TimeZone,
                          on loop: any EventLoop) -> EventLoopFuture<[QuotaStanding]> {
        let tracked = budgets.filter(\.isTracked)
        guard !tracked.isEmpty else { return loop.makeSucceededFuture([]) }
        let intervals = periodIntervals(tracked, now: now, timeZone: timeZone)
        let scopes = tracked.map(\.scope.sharedKey), periods = tracked.map(\.period.rawValue)
        let starts = intervals.map(\.start), ends = intervals.map(\.end)
        let query: PostgresQuery = """
            SELECT least(coalesce(q.spent, l.o_cost) + coalesce(q.reserved, 0), 9223372036854775807)::int8,
                   least(coalesce(q.spent_tokens, l.o_tokens) + coalesce(q.reserved_tokens, 0), 9223372036854775807)::int8
            FROM unnest(\(scopes)::text[], \(periods)::text[], \(starts)::int8[], \(ends)::int8[])
                 WITH ORDINALITY AS k(s, p, st, en, ord)
            LEFT JOIN quota_counters q ON q.scope = k.s AND q.period = k.p AND q.period_start = k.st
            LEFT JOIN LATERAL tokenctl_quota_ledger_spend(k.s, k.st, k.en) l ON q.scope IS NULL
            ORDER BY k.ord
            """
        let logger = self.logger
        return connections.withConnection(on: loop) { connection in
            connection.query(query, logger: logger)
        }.flatMapThrowing { result in
            let used = try result.rows.map { try $0.decode((Int64, Int64).self) }
            guard used.count == tracked.count else {
                throw SharedQuotaError.unexpectedAnswer("\(used.count) standings for \(tracked.count) budgets")
            }
            return zip(tracked, zip(used, intervals)).map { budget, pair in
                let ((usd, tokens), interval) = pair
                return QuotaStanding(
                    limit: budget,
                    usdLeft: budget.usd.map { Money(picodollars: max(0, $0.picodollars &- usd)) },
                    tokensLeft: budget.tokens.map { Int(clamping: max(0, Int64($0) &- tokens)) },
                    resetsAt: interval.end)
            }
        }
    }

    /// Holds not yet settled, across all replicas (`replica`: of one replica only).
    public func openHolds(replica: String? = nil, on loop: any EventLoop) -> EventLoopFuture<Int> {
        let logger = self.logger
        return connections.withConnection(on: loop) { connection in
            if let replica {
                return connection.query("SELECT count(*) FROM quota_holds WHERE replica = \(replica)", logger: logger)
            }
            return connection.query("SELECT count(*) FROM quota_holds", logger: logger)
        }.flatMapThrowing { result in
            guard let row = result.rows.first else { return 0 }
            return try row.decode(Int.self)
        }
    }

    // MARK: Periods

    /// The current interval of each budget's period, from a cached clock per time zone.
    private func periodIntervals(_ budgets: [BudgetLimit], now: Int64, timeZone: TimeZone) -> [PeriodInterval] {
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

/// One budget counter's sums (pico-dollars and tokens).
public struct SharedQuotaCounter: Sendable, Hashable {
    public var spent: Int128
    public var reserved: Int128
    public var spentTokens: Int128
    public var reservedTokens: Int128

    public init(spent: Int128, reserved: Int128, spentTokens: Int128, reservedTokens: Int128) {
        self.spent = spent
        self.reserved = reserved
        self.spentTokens = spentTokens
        self.reservedTokens = reservedTokens
    }
}

/// Timings and sizes of the shared quota state.
public struct SharedQuotaSettings: Sendable, Hashable {
    /// A replica not seen for this long is dead: its holds are reaped. Default 15 s.
    public var replicaTimeout: Duration
    /// How often each replica says it is alive. Default 2 s (well under `replicaTimeout`).
    public var heartbeatInterval: Duration
    /// How often each replica looks for holds to reap. Default 5 s.
    public var reapInterval: Duration
    /// A hold older than this is reaped even if its replica lives (a call that never settled).
    /// Default one hour, like `QuotaBook.abandonAfter`; keep it well above the longest call.
    public var holdExpiry: Duration
    /// PostgreSQL connections per event loop. Default 2.
    public var connectionsPerLoop: Int
    /// How long admission waits for PostgreSQL (connecting, or a reservation's answer) before it
    /// refuses the call. Default 5 s.
    public var answerTimeout: Duration

    public init(replicaTimeout: Duration = .seconds(15), heartbeatInterval: Duration = .seconds(2),
                reapInterval: Duration = .seconds(5), holdExpiry: Duration = .seconds(3_600),
                connectionsPerLoop: Int = 2, answerTimeout: Duration = .seconds(5)) {
        self.answerTimeout = answerTimeout
        self.replicaTimeout = replicaTimeout
        self.heartbeatInterval = heartbeatInterval
        self.reapInterval = reapInterval
        self.holdExpiry = holdExpiry
        self.connectionsPerLoop = connectionsPerLoop
    }

    /// The longest a dead replica's holds stay: its last heartbeat was at most this long before
    /// they are reaped (the reaper runs on every live replica).
    public var releaseBound: Duration { replicaTimeout + reapInterval }

    var holdExpirySeconds: Int64 { max(1, holdExpiry.components.seconds) }
    var replicaTimeoutMicros: Int64 { Self.micros(replicaTimeout) }

    static func amount(_ duration: Duration) -> TimeAmount {
        .nanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    static func micros(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }
}

/// One row of `tokenctl_quota_reserve`: a bucket's sums before the call.
private struct BucketStanding {
    var ord: Int
    var spent: Int64
    var reserved: Int64
    var spentTokens: Int64
    var reservedTokens: Int64
    var refused: String?
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

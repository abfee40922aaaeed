import Logging
import NIOCore
import PostgresNIO

/// Reservations sent in batches (`LoopBatches`): one `tokenctl_quota_reserve_many` for the
/// reservations of an event loop that queued while its previous one was in flight. PostgreSQL
/// admits them in the order they queued, each seeing the holds of those before it, as one
/// statement each would have. A statement that waits (on a lock, on a hung connection) holds the
/// loop's next reservations until it is answered or its deadline closes its connection; those
/// that share a counter with it (a team's, the org's) would wait for its lock all the same.
struct ReservationBatches: Sendable {
    /// One budget of a reservation: its bucket, the period's end and its limits (-1: none).
    struct Budget: Sendable {
        let scope: String
        let period: String
        let start: Int64
        let end: Int64
        let usd: Int64
        let tokens: Int64
    }

    struct Reservation: LoopBatchItem {
        let callID: String
        let budgets: [Budget]
        let picodollars: Int64
        let tokens: Int64
        /// How long its hold outlives a live replica at least: its call's longest life.
        let holdSeconds: Int64
        /// Turns true (on the reservation's loop) once it goes to a connection.
        let sent: NIOLoopBoundBox<Bool>
        let abandonment: Abandonment
        /// Each budget's bucket before this call, in order.
        let answer: EventLoopPromise<[BucketStanding]>

        var isAbandoned: Bool { abandonment.isSet }
        func drop() { answer.fail(SharedQuotaError.abandoned) }
    }

    private let batches: LoopBatches<Reservation>
    private let sent = StatementCount()

    /// Statements sent so far, a batch retried call by call counting each (tests read it).
    var statements: Int { sent.value }

    init(replica: String, holdSeconds: Int64, connections: SharedQuotaConnections, logger: Logger) {
        let sent = self.sent
        batches = LoopBatches { batch, loop in
            Self.send(batch, replica: replica, holdSeconds: holdSeconds, connections: connections, logger: logger,
                      sent: sent, on: loop)
        }
    }

    func reserve(_ reservation: Reservation, on loop: any EventLoop) -> EventLoopFuture<[BucketStanding]> {
        batches.submit(reservation, on: loop)
        return reservation.answer.futureResult
    }

    private static func send(_ batch: [Reservation], replica: String, holdSeconds: Int64,
                             connections: SharedQuotaConnections, logger: Logger, sent: StatementCount,
                             on loop: any EventLoop) -> EventLoopFuture<Void> {
        var ids: [String] = [], counts: [Int] = [], costs: [Int64] = [], tokens: [Int64] = []
        var scopes: [String] = [], periods: [String] = [], starts: [Int64] = [], ends: [Int64] = []
        var usd: [Int64] = [], limits: [Int64] = []
        // One expiry for the batch: the longest any of its calls needs.
        let expiry = batch.reduce(holdSeconds) { max($0, $1.holdSeconds) }
        for reservation in batch {
            ids.append(reservation.callID)
            counts.append(reservation.budgets.count)
            costs.append(reservation.picodollars)
            tokens.append(reservation.tokens)
            for budget in reservation.budgets {
                scopes.append(budget.scope)
                periods.append(budget.period)
                starts.append(budget.start)
                ends.append(budget.end)
                usd.append(budget.usd)
                limits.append(budget.tokens)
            }
        }
        let query: PostgresQuery = """
            SELECT o_call, o_ord, o_spent, o_reserved, o_spent_tokens, o_reserved_tokens, o_refused
            FROM tokenctl_quota_reserve_many(\(ids)::text[], \(replica), \(counts)::int4[], \(scopes)::text[],
                \(periods)::text[], \(starts)::int8[], \(ends)::int8[], \(usd)::int8[], \(limits)::int8[],
                \(costs)::int8[], \(tokens)::int8[], \(expiry)::int8)
            """
        sent.add()
        return connections.withConnection(on: loop) { connection in
            for reservation in batch { reservation.sent.value = true }
            return connection.query(query, logger: logger)
        }.flatMapThrowing { result in
            var standings = Array(repeating: [BucketStanding](), count: batch.count)
            for row in result.rows {
                let (call, ord, spent, reserved, spentTokens, reservedTokens, refused)
                    = try row.decode((Int, Int, Int64, Int64, Int64, Int64, String?).self)
                guard standings.indices.contains(call - 1) else {
                    throw SharedQuotaError.unexpectedAnswer("tokenctl_quota_reserve_many answered for call \(call) of \(batch.count)")
                }
                standings[call - 1].append(BucketStanding(ord: ord, spent: spent, reserved: reserved,
                                                          spentTokens: spentTokens, reservedTokens: reservedTokens,
                                                          refused: refused))
            }
            for (reservation, rows) in zip(batch, standings) { reservation.answer.succeed(rows) }
        }.flatMapError { error in
            // A statement the server failed for what a call carried was rolled back as a whole:
            // each call again alone, in order, so that the error fails that call only. An error
            // of the server's own state (a missing function, a read-only server) fails the batch.
            if batch.count > 1, Self.isCallsError(error) {
                return sendOneByOne(batch[...], replica: replica, holdSeconds: holdSeconds, connections: connections,
                                    logger: logger, sent: sent, on: loop)
            }
            for reservation in batch { reservation.answer.fail(error) }
            return loop.makeSucceededVoidFuture()
        }
    }

    /// `reservations` sent alone, one after another; those abandoned meanwhile are dropped.
    private static func sendOneByOne(_ reservations: ArraySlice<Reservation>, replica: String, holdSeconds: Int64,
                                     connections: SharedQuotaConnections, logger: Logger, sent: StatementCount,
                                     on loop: any EventLoop) -> EventLoopFuture<Void> {
        guard let first = reservations.first else { return loop.makeSucceededVoidFuture() }
        let rest: @Sendable () -> EventLoopFuture<Void> = {
            sendOneByOne(reservations.dropFirst(), replica: replica, holdSeconds: holdSeconds, connections: connections,
                         logger: logger, sent: sent, on: loop)
        }
        guard !first.isAbandoned else {
            first.drop()
            return rest()
        }
        return send([first], replica: replica, holdSeconds: holdSeconds, connections: connections, logger: logger,
                    sent: sent, on: loop).flatMap(rest)
    }

    /// An error PostgreSQL answered about the data a statement carried (SQLSTATE class 22, data
    /// exception, or 23, integrity constraint violation: a call id that holds already).
    private static func isCallsError(_ error: any Error) -> Bool {
        guard let failed = error as? PSQLError, failed.code == .server,
              let state = failed.serverInfo?[.sqlState] else { return false }
        return state.hasPrefix("22") || state.hasPrefix("23")
    }
}

/// One row of `tokenctl_quota_reserve_many`: a bucket's sums before the call.
struct BucketStanding: Sendable {
    var ord: Int
    var spent: Int64
    var reserved: Int64
    var spentTokens: Int64
    var reservedTokens: Int64
    var refused: String?
}

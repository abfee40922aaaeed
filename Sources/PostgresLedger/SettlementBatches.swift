import Logging
import NIOCore
import PostgresNIO

/// Settlements sent in batches (`LoopBatches`): one `tokenctl_quota_settle_many` for the
/// settlements of an event loop that queued while its previous one was in flight.
struct SettlementBatches: Sendable {
    struct Settlement: LoopBatchItem {
        let callID: String
        let picodollars: Int64
        let tokens: Int64
        let answer: EventLoopPromise<Bool>
        var isAbandoned: Bool { false }  // a settlement is always sent: it gives a hold back
        func drop() {}
    }

    private let batches: LoopBatches<Settlement>
    private let sent = StatementCount()

    /// Statements sent so far (tests read it).
    var statements: Int { sent.value }

    init(connections: SharedQuotaConnections, logger: Logger) {
        let sent = self.sent
        batches = LoopBatches { batch, loop in
            Self.send(batch, connections: connections, logger: logger, sent: sent, on: loop)
        }
    }

    /// True if the call's hold (or, after the reaper, its reaped record) was settled now; false
    /// if it already was, or never existed. Answered on `loop`.
    func settle(callID: String, picodollars: Int64, tokens: Int64, on loop: any EventLoop) -> EventLoopFuture<Bool> {
        let settlement = Settlement(callID: callID, picodollars: picodollars, tokens: tokens,
                                    answer: loop.makePromise(of: Bool.self))
        batches.submit(settlement, on: loop)
        return settlement.answer.futureResult
    }

    private static func send(_ batch: [Settlement], connections: SharedQuotaConnections, logger: Logger,
                             sent: StatementCount, on loop: any EventLoop) -> EventLoopFuture<Void> {
        let ids = batch.map(\.callID), costs = batch.map(\.picodollars), tokens = batch.map(\.tokens)
        sent.add()
        return connections.withConnection(on: loop) { connection in
            connection.query("""
                SELECT o_call_id FROM tokenctl_quota_settle_many(\(ids)::text[], \(costs)::int8[], \(tokens)::int8[])
                """, logger: logger)
        }.flatMapThrowing { result in
            Set(try result.rows.map { try $0.decode(String.self) })
        }.map { result -> Void in
            // A call named twice in one batch settles once: the first is answered true.
            var answered = Set<String>()
            for settlement in batch {
                settlement.answer.succeed(result.contains(settlement.callID) && answered.insert(settlement.callID).inserted)
            }
        }.recover { error in
            for settlement in batch { settlement.answer.fail(error) }
        }
    }
}

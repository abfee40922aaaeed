import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// Settlements sent in batches: at most one `tokenctl_quota_settle_many` in flight per event
/// loop; the settlements made meanwhile wait for its answer and go together in the next one. A
/// settlement alone goes at once; under load a replica sends one statement for many calls
/// instead of one per call (each a round trip, and PostgreSQL's work to lock the same counters).
final class SettlementBatches: Sendable {
    private struct Settlement: Sendable {
        let callID: String
        let picodollars: Int64
        let tokens: Int64
        let answer: EventLoopPromise<Bool>
    }

    /// One event loop's settlements (mutated in place, under `queues`' lock).
    private struct LoopQueue {
        var inFlight = false
        var waiting: [Settlement] = []

        /// True if `settlement` is to be sent now; false if it waits for the batch in flight.
        mutating func enqueue(_ settlement: Settlement) -> Bool {
            guard !inFlight else {
                waiting.append(settlement)
                return false
            }
            inFlight = true
            return true
        }

        /// The next batch once the one in flight has its answer; empty: nothing is in flight now.
        mutating func takeNext() -> [Settlement] {
            let taken = Array(waiting.prefix(SettlementBatches.maxBatch))
            waiting.removeFirst(taken.count)
            inFlight = !taken.isEmpty
            return taken
        }
    }

    /// Calls per statement, at most (the rest wait for the next one).
    static let maxBatch = 256

    private let connections: SharedQuotaConnections
    private let logger: Logger
    private let queues = Mutex<[ObjectIdentifier: LoopQueue]>([:])
    private let sent = Mutex(0)

    /// Statements sent so far (tests read it).
    var statements: Int { sent.withLock { $0 } }

    init(connections: SharedQuotaConnections, logger: Logger) {
        self.connections = connections
        self.logger = logger
    }

    /// True if the call's hold (or, after the reaper, its reaped record) was settled now; false
    /// if it already was, or never existed. Answered on `loop`.
    func settle(callID: String, picodollars: Int64, tokens: Int64, on loop: any EventLoop) -> EventLoopFuture<Bool> {
        let settlement = Settlement(callID: callID, picodollars: picodollars, tokens: tokens,
                                    answer: loop.makePromise(of: Bool.self))
        let sendNow = queues.withLock { queues in
            queues[ObjectIdentifier(loop), default: LoopQueue()].enqueue(settlement)
        }
        if sendNow { send([settlement], on: loop) }
        return settlement.answer.futureResult
    }

    private func send(_ batch: [Settlement], on loop: any EventLoop) {
        let ids = batch.map(\.callID), costs = batch.map(\.picodollars), tokens = batch.map(\.tokens)
        let logger = self.logger
        sent.withLock { $0 += 1 }
        connections.withConnection(on: loop) { connection in
            connection.query("""
                SELECT o_call_id FROM tokenctl_quota_settle_many(\(ids)::text[], \(costs)::int8[], \(tokens)::int8[])
                """, logger: logger)
        }.flatMapThrowing { result in
            Set(try result.rows.map { try $0.decode(String.self) })
        }.whenComplete { [self] result in
            // A call named twice in one batch settles once: the first is answered true.
            var answered = Set<String>()
            for settlement in batch {
                switch result {
                case .success(let settled):
                    settlement.answer.succeed(settled.contains(settlement.callID) && answered.insert(settlement.callID).inserted)
                case .failure(let error):
                    settlement.answer.fail(error)
                }
            }
            sendWaiting(on: loop)
        }
    }

    /// After a batch's answer: the settlements that waited for it, or the loop goes idle.
    private func sendWaiting(on loop: any EventLoop) {
        let next = queues.withLock { queues in
            queues[ObjectIdentifier(loop), default: LoopQueue()].takeNext()
        }
        if !next.isEmpty { send(next, on: loop) }
    }
}

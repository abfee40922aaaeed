import NIOCore
import Synchronization

/// Work for PostgreSQL sent in batches, per event loop: at most one batch in flight per loop;
/// the items submitted meanwhile wait for its answer and go together in the next one (at most
/// `maxBatch`), in the order submitted. An item alone goes at once; under load a replica sends
/// one statement for many calls instead of one each (each a round trip, and PostgreSQL's work to
/// lock the same counters). Items answer through promises of their own, completed by `send`.
final class LoopBatches<Item: LoopBatchItem>: Sendable {
    /// Sends `batch` (from `loop`'s queue) and completes each item's answer; the future says
    /// the batch is over (the next one may go), whatever its outcome.
    typealias Send = @Sendable (_ batch: [Item], _ loop: any EventLoop) -> EventLoopFuture<Void>

    /// One event loop's items (mutated in place, under `queues`' lock).
    private struct LoopQueue {
        var inFlight = false
        var waiting: [Item] = []

        /// True if `item` is to be sent now; false if it waits for the batch in flight.
        mutating func enqueue(_ item: Item) -> Bool {
            guard !inFlight else {
                waiting.append(item)
                return false
            }
            inFlight = true
            return true
        }

        /// The next batch once the one in flight is over (empty: nothing is in flight now), and
        /// the items abandoned while they waited, which are not sent.
        mutating func takeNext(max: Int) -> (batch: [Item], dropped: [Item]) {
            let dropped = waiting.filter(\.isAbandoned)
            if !dropped.isEmpty { waiting.removeAll(where: \.isAbandoned) }
            let taken = Array(waiting.prefix(max))
            waiting.removeFirst(taken.count)
            inFlight = !taken.isEmpty
            return (taken, dropped)
        }
    }

    private let maxBatch: Int
    private let send: Send
    private let queues = Mutex<[ObjectIdentifier: LoopQueue]>([:])

    /// `maxBatch`: items per batch, at most (the rest wait for the next one).
    init(maxBatch: Int = 256, send: @escaping Send) {
        self.maxBatch = maxBatch
        self.send = send
    }

    func submit(_ item: Item, on loop: any EventLoop) {
        let sendNow = queues.withLock { queues in
            queues[ObjectIdentifier(loop), default: LoopQueue()].enqueue(item)
        }
        if sendNow { dispatch([item], on: loop) }
    }

    private func dispatch(_ batch: [Item], on loop: any EventLoop) {
        send(batch, loop).whenComplete { [self] _ in
            let next = queues.withLock { queues in
                queues[ObjectIdentifier(loop), default: LoopQueue()].takeNext(max: maxBatch)
            }
            for item in next.dropped { item.drop() }
            if !next.batch.isEmpty { dispatch(next.batch, on: loop) }
        }
    }
}

/// An item of `LoopBatches`.
protocol LoopBatchItem: Sendable {
    /// True once nobody waits for the item's answer any more: it is then not sent, but dropped.
    var isAbandoned: Bool { get }
    /// Completes the answer of an abandoned item that was not sent.
    func drop()
}

/// Statements sent so far (tests read it).
final class StatementCount: Sendable {
    private let count = Atomic(0)
    var value: Int { count.load(ordering: .relaxed) }
    func add() { count.add(1, ordering: .relaxed) }
}

/// Set once a caller stops waiting for an answer (its deadline passed); read on any thread.
final class Abandonment: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

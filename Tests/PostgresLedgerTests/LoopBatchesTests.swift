import NIOCore
import NIOPosix
@testable import PostgresLedger
import Synchronization
import XCTest

/// The batching of `LoopBatches` on its own (needs no PostgreSQL): a send is a promise the
/// test completes, so which items go together, in what order, is deterministic.
final class LoopBatchesTests: XCTestCase {
    private final class Item: LoopBatchItem {
        let name: String
        let abandonment = Abandonment()
        private let drops = Mutex(0)
        init(name: String) { self.name = name }
        var isAbandoned: Bool { abandonment.isSet }
        var dropped: Int { drops.withLock { $0 } }
        func drop() { drops.withLock { $0 += 1 } }
    }

    /// The batches sent so far and the promises that end them.
    private final class Sends: Sendable {
        let batches = Mutex<[[String]]>([])
        let ends = Mutex<[EventLoopPromise<Void>]>([])

        func send(_ batch: [Item], on loop: any EventLoop) -> EventLoopFuture<Void> {
            let end = loop.makePromise(of: Void.self)
            batches.withLock { $0.append(batch.map(\.name)) }
            ends.withLock { $0.append(end) }
            return end.futureResult
        }

        /// Ends the batch sent `index`-th.
        func end(_ index: Int) { ends.withLock { $0[index] }.succeed() }
        var sent: [[String]] { batches.withLock { $0 } }
    }

    private var group: MultiThreadedEventLoopGroup!

    override func setUp() { group = MultiThreadedEventLoopGroup(numberOfThreads: 2) }
    override func tearDown() { try? group.syncShutdownGracefully() }

    func testItemsMadeWhileABatchIsInFlightGoTogetherInOrderUpToTheLimit() throws {
        let sends = Sends()
        let batches = LoopBatches<Item>(maxBatch: 3) { batch, loop in sends.send(batch, on: loop) }
        let loop = group.next()
        try loop.submit {
            for name in ["a", "b", "c", "d", "e"] { batches.submit(Item(name: name), on: loop) }
        }.wait()
        XCTAssertEqual(sends.sent, [["a"]], "the first goes at once, the others wait for its answer")
        try loop.submit { sends.end(0) }.wait()
        XCTAssertEqual(sends.sent, [["a"], ["b", "c", "d"]], "at most 3 together, in the order made")
        try loop.submit { sends.end(1) }.wait()
        XCTAssertEqual(sends.sent, [["a"], ["b", "c", "d"], ["e"]])
        try loop.submit { sends.end(2) }.wait()
        try loop.submit { batches.submit(Item(name: "f"), on: loop) }.wait()
        XCTAssertEqual(sends.sent.last, ["f"], "nothing in flight: it goes at once")
        try loop.submit { sends.end(3) }.wait()
    }

    func testEachLoopHasItsOwnBatchInFlight() throws {
        let sends = Sends()
        let batches = LoopBatches<Item>(maxBatch: 256) { batch, loop in sends.send(batch, on: loop) }
        let first = group.next(), second = group.next()
        XCTAssertFalse(first === second)
        try first.submit { batches.submit(Item(name: "a"), on: first) }.wait()
        try second.submit { batches.submit(Item(name: "b"), on: second) }.wait()
        XCTAssertEqual(sends.sent, [["a"], ["b"]], "b does not wait for a, made on another loop")
        try first.submit { sends.end(0) }.wait()
        try second.submit { sends.end(1) }.wait()
    }

    /// Items whose caller stopped waiting while they queued (a PostgreSQL that stalls: their
    /// deadline passed behind the batch in flight) are not sent; they are answered by `drop`.
    func testItemsAbandonedWhileTheyWaitAreDroppedNotSent() throws {
        let sends = Sends()
        let batches = LoopBatches<Item>(maxBatch: 256) { batch, loop in sends.send(batch, on: loop) }
        let loop = group.next()
        let items = ["a", "b", "c", "d"].map { Item(name: $0) }
        try loop.submit { for item in items { batches.submit(item, on: loop) } }.wait()
        items[1].abandonment.set()
        items[3].abandonment.set()
        try loop.submit { sends.end(0) }.wait()
        XCTAssertEqual(sends.sent, [["a"], ["c"]])
        XCTAssertEqual(items.map(\.dropped), [0, 1, 0, 1])
        items[2].abandonment.set()  // abandoned once sent: its send answers it, not `drop`
        try loop.submit { sends.end(1) }.wait()
        XCTAssertEqual(items[2].dropped, 0)
    }
}

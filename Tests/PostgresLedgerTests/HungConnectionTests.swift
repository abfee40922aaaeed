import Foundation
import Ledger
import Logging
import Metering
import NIOCore
import NIOPosix
import Policy
@testable import PostgresLedger
import PostgresNIO
import XCTest
import LedgerTestSupport

/// A PostgreSQL connection that hangs after it was opened (a server or network that stops
/// answering without resetting it): nothing may wait on it for ever, and it is not used again.
/// Needs no PostgreSQL: `HungServer` completes the startup handshake, then never answers.
final class HungConnectionTests: XCTestCase {
    private let logger = Logger(label: "hung-connection-test")

    func testSessionStatementWithoutAnswerFailsAfterItsDeadlineAndReconnects() throws {
        let server = try HungServer()
        defer { server.close() }
        let session = try PostgresSession(server.location)
        defer { session.close() }
        session.answerTimeout = .milliseconds(300)
        let start = ContinuousClock.now
        XCTAssertThrowsError(try session.execute("SELECT 1")) { error in
            XCTAssertTrue("\(error)".contains("no answer within"), "\(error)")
        }
        let waited = ContinuousClock.now - start
        XCTAssertGreaterThanOrEqual(waited, .milliseconds(300))
        XCTAssertLessThan(waited, .seconds(3))
        XCTAssertEqual(server.accepted, 1)
        // The hung connection was closed: the next statement opens another one.
        XCTAssertThrowsError(try session.execute("SELECT 1"))
        XCTAssertEqual(server.accepted, 2)
    }

    /// Before, the slot kept the hung connection: every later reservation on it waited there
    /// and failed too, until a restart.
    func testSharedQuotaConnectionWithoutAnswerIsClosedAndReplaced() async throws {
        let server = try HungServer()
        defer { server.close() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let book = SharedQuotaBook(configuration: server.location.connectionConfiguration, replica: "hung",
                                   settings: SharedQuotaSettings(connectionsPerLoop: 1, answerTimeout: .milliseconds(300)),
                                   logger: logger)
        let loop = group.next()
        let budgets = [BudgetLimit(scope: .org, period: .day, usd: Money(picodollars: 1_000_000_000_000))]
        for attempt in 1...2 {
            do {
                let result = try await book.reserve(callID: "h-\(attempt)", budgets: budgets, cost: .zero, tokens: 1,
                                                    now: UnixTime.nowMicros(), timeZone: TimeZone(identifier: "UTC")!,
                                                    on: loop).get()
                XCTFail("expected no answer, got \(result)")
            } catch SharedQuotaError.noAnswer {}
            // The connection's own deadline (answerTimeout after it was ready) closes it.
            try await Task.sleep(for: .milliseconds(400))
        }
        // A connection per reservation (and more for the releases after them): the hung one was not reused.
        XCTAssertGreaterThanOrEqual(server.accepted, 2)
        try await book.shutdown(on: loop).get()
        try await group.shutdownGracefully()
    }
}

/// Accepts PostgreSQL connections, answers the startup message (authentication ok, backend key,
/// ready for query), then reads and ignores everything.
final class HungServer: @unchecked Sendable {
    private let channel: any Channel
    private let connections = Locked(0)
    let location: PostgresLocation

    /// Connections accepted so far.
    var accepted: Int { connections.current }

    init() throws {
        let connections = self.connections
        channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                connections.withLock { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handshake())
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        location = try PostgresLocation(url: "postgres://nobody@127.0.0.1:\(channel.localAddress?.port ?? 0)/none",
                                        environment: [:])
    }

    func close() { try? channel.close().wait() }

    private final class Handshake: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var answered = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !answered else { return }
            answered = true
            var reply = context.channel.allocator.buffer(capacity: 32)
            reply.writeInteger(UInt8(ascii: "R")); reply.writeInteger(Int32(8)); reply.writeInteger(Int32(0))
            reply.writeInteger(UInt8(ascii: "K")); reply.writeInteger(Int32(12)); reply.writeInteger(Int32(4242))
            reply.writeInteger(Int32(7))
            reply.writeInteger(UInt8(ascii: "Z")); reply.writeInteger(Int32(5)); reply.writeInteger(UInt8(ascii: "I"))
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        }
    }
}

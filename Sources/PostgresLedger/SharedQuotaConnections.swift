import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// PostgreSQL connections for the shared quota state: a few per event loop, opened on first use
/// there. A query made on a loop runs on a connection of that loop, so its answer arrives on the
/// caller's loop with no hop and no Task. A connection that closed (server restart, network) is
/// replaced on the next use; a connection attempt that fails fails the queries waiting for it
/// (the caller fails closed) and the next query tries again.
///
/// A connection can hang without closing (a server or network that stops answering, no reset):
/// a query not answered within its deadline closes its connection, which fails what waits on it
/// and makes the next use of the slot reconnect, rather than every later query waiting there too.
final class SharedQuotaConnections: Sendable {
    private let configuration: PostgresConnection.Configuration
    private let answerTimeout: Duration
    /// `SET statement_timeout` on each new connection, in milliseconds.
    private let statementTimeoutMillis: Int64
    private let perLoop: Int
    private let logger: Logger
    private let state = Mutex(State())

    private struct State: ~Copyable {
        var loops: [ObjectIdentifier: Slots] = [:]
        var nextID = 1
        var closed = false
    }

    private struct Slots {
        var connections: [Slot]
        var next = 0
    }

    private enum Slot {
        case empty
        case connecting(EventLoopFuture<PostgresConnection>)
        case open(PostgresConnection)
    }

    /// `answerTimeout`: the deadline of a query unless `withConnection` is given another one;
    /// `statementTimeout`: the server's limit for any statement on these connections.
    init(configuration: PostgresConnection.Configuration, answerTimeout: Duration, statementTimeout: Duration,
         perLoop: Int, logger: Logger) {
        self.configuration = configuration
        self.answerTimeout = answerTimeout
        statementTimeoutMillis = max(1, statementTimeout.components.seconds * 1_000
                                        + statementTimeout.components.attoseconds / 1_000_000_000_000_000)
        self.perLoop = max(1, perLoop)
        self.logger = logger
    }

    /// Runs `body` on one of `loop`'s connections (round robin); the result completes on `loop`.
    /// If it has not completed `answerTimeout` (default: the pool's) after the connection was
    /// ready, the connection is closed: `body`'s queries fail, and the slot reconnects next time.
    func withConnection<Value: Sendable>(
        on loop: any EventLoop, answerTimeout: Duration? = nil,
        _ body: @escaping @Sendable (PostgresConnection) -> EventLoopFuture<Value>
    ) -> EventLoopFuture<Value> {
        let timeout = answerTimeout ?? self.answerTimeout
        return connection(on: loop).flatMap { connection in
            Self.answered(body(connection), on: connection, within: timeout)
        }
    }

    /// `answer`, or the closing of `connection` (which fails it) if it has not come `timeout` from now.
    private static func answered<Value>(_ answer: EventLoopFuture<Value>, on connection: PostgresConnection,
                                        within timeout: Duration) -> EventLoopFuture<Value> {
        let expired = connection.eventLoop.scheduleTask(in: TimeAmount(timeout)) { close(connection).whenComplete { _ in } }
        return answer.always { _ in expired.cancel() }
    }

    /// A connection of `loop`: an open one, or one being opened.
    func connection(on loop: any EventLoop) -> EventLoopFuture<PostgresConnection> {
        let key = ObjectIdentifier(loop)
        enum Pick { case ready(PostgresConnection), pending(EventLoopFuture<PostgresConnection>), opened(Int, EventLoopFuture<PostgresConnection>), closed }
        let pick: Pick = state.withLock { state in
            if state.closed { return .closed }
            var slots = state.loops[key] ?? Slots(connections: Array(repeating: .empty, count: perLoop))
            let index = slots.next
            slots.next = (index + 1) % perLoop
            let pick: Pick
            switch slots.connections[index] {
            case .open(let connection) where !connection.isClosed: pick = .ready(connection)
            case .connecting(let future): pick = .pending(future)
            case .open, .empty:
                // Only schedules the connection on `loop`: nothing runs under this lock.
                let future = open(on: loop, id: state.nextID)
                state.nextID += 1
                slots.connections[index] = .connecting(future)
                pick = .opened(index, future)
            }
            state.loops[key] = slots
            return pick
        }
        switch pick {
        case .ready(let connection): return loop.makeSucceededFuture(connection)
        case .pending(let future): return future.hop(to: loop)
        case .closed: return loop.makeFailedFuture(SharedQuotaError.closed)
        case .opened(let index, let future):
            future.whenComplete { [self] result in
                let closed = state.withLock { state in
                    if case .connecting(let pending) = state.loops[key]?.connections[index], pending === future {
                        switch result {
                        case .success(let connection): state.loops[key]?.connections[index] = .open(connection)
                        case .failure: state.loops[key]?.connections[index] = .empty
                        }
                    }
                    return state.closed
                }
                // Opened after the pool closed: not kept.
                if closed, case .success(let connection) = result { Self.close(connection).whenComplete { _ in } }
            }
            return future
        }
    }

    /// Opens a connection and sets its `statement_timeout`. Only schedules work on `loop`.
    private func open(on loop: any EventLoop, id: Int) -> EventLoopFuture<PostgresConnection> {
        let logger = self.logger, timeout = answerTimeout
        let setting = PostgresQuery(unsafeSQL: "SET statement_timeout = \(statementTimeoutMillis)")
        return PostgresConnection.connect(on: loop, configuration: configuration, id: id, logger: logger)
            .flatMap { connection in
                Self.answered(connection.query(setting, logger: logger), on: connection, within: timeout)
                    .map { _ in connection }
                    .flatMapError { error in Self.close(connection).flatMapThrowing { throw error } }
            }
    }

    /// Closes `connection`, keeping it alive until it has closed (PostgresNIO asserts that a
    /// connection is closed when it is deinitialised).
    private static func close(_ connection: PostgresConnection) -> EventLoopFuture<Void> {
        connection.close().map { withExtendedLifetime(connection) {} }
    }

    /// Closes every connection; later queries fail with `SharedQuotaError.closed`.
    func close() -> [EventLoopFuture<Void>] {
        let slots = state.withLock { state -> [Slot] in
            state.closed = true
            defer { state.loops = [:] }
            return state.loops.values.flatMap(\.connections)
        }
        return slots.compactMap { slot in
            switch slot {
            case .open(let connection): return Self.close(connection)
            // Not waited for (a server that never answers would hold the stop up): closed
            // when it opens, as the pool is closed by then.
            case .connecting, .empty: return nil
            }
        }
    }
}

/// Why the shared quota state could not answer.
public enum SharedQuotaError: Error, Sendable, CustomStringConvertible {
    /// The book was shut down.
    case closed
    /// PostgreSQL answered something the book did not expect (a bug or a schema mismatch).
    case unexpectedAnswer(String)
    /// No answer within `SharedQuotaSettings.answerTimeout`.
    case noAnswer(Duration)
    /// Not sent: its caller had stopped waiting (after `noAnswer`) while it queued.
    case abandoned

    public var description: String {
        switch self {
        case .closed: return "the shared quota state is closed"
        case .unexpectedAnswer(let detail): return "unexpected answer from PostgreSQL: \(detail)"
        case .noAnswer(let timeout): return "no answer from PostgreSQL within \(timeout)"
        case .abandoned: return "not sent to PostgreSQL: no longer awaited"
        }
    }
}

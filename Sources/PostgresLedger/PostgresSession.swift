import Ledger
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// One PostgreSQL connection used synchronously: the ledger's callers (the writer's thread, the
/// CLI, request handlers on the gateway's event loops) are blocking code, as with SQLite.
///
/// The connection runs on the module's own event loop (never one of the gateway's), so waiting
/// on it from a gateway event loop cannot deadlock. Not thread-safe: its owner serialises calls.
/// A broken connection is reopened by the next `query` (the writer's retries rely on that).
///
/// A connection that hangs (the server or the network stops answering without resetting it)
/// would block its caller for ever: with `answerTimeout`, a statement not answered in time
/// closes the connection and fails, and the next `query` reconnects. Opening a connection is
/// bounded by PostgresNIO's `connectTimeout` (10 s, the startup handshake included).
final class PostgresSession {
    /// One loop is plenty: queries are waited for one at a time per session.
    static let eventLoops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private static let nextID = Atomic<Int>(0)

    let location: PostgresLocation
    /// Statements run on every new connection (settings a reconnect must not lose).
    private var setup: [String] = []
    private let logger: Logger
    private var connection: PostgresConnection?
    /// How long a statement may wait for its answer; nil: no limit (a long report, a migration).
    var answerTimeout: Duration?

    init(_ location: PostgresLocation) throws {
        self.location = location
        var logger = Logger(label: "tokenctl.postgres")
        logger.logLevel = .warning
        self.logger = logger
        try reconnectIfNeeded()
    }

    private func reconnectIfNeeded() throws {
        if let connection {
            if !connection.isClosed { return }
            // PostgresNIO asserts that a connection is closed before it goes away, even a broken one.
            try? connection.close().wait()
            self.connection = nil
        }
        let id = Self.nextID.wrappingAdd(1, ordering: .relaxed).newValue
        do {
            let connection = try PostgresConnection.connect(on: Self.eventLoops.next(),
                                                            configuration: location.connectionConfiguration,
                                                            id: id, logger: logger).wait()
            self.connection = connection
            for statement in setup { _ = try answer(PostgresQuery(unsafeSQL: statement), on: connection) }
        } catch {
            throw Self.ledgerError(error, context: "connect to \(location)")
        }
    }

    /// Runs one statement and returns every row (use paging for big results).
    @discardableResult
    func query(_ query: PostgresQuery, context: @autoclosure () -> String) throws -> [PostgresRow] {
        try reconnectIfNeeded()
        guard let connection else { throw LedgerError.closed }
        do {
            return try answer(query, on: connection)
        } catch {
            throw Self.ledgerError(error, context: context())
        }
    }

    /// Waits for `query`'s rows, at most `answerTimeout`: then the connection is closed (which
    /// fails the query), so that a hung server cannot hold the caller's thread.
    private func answer(_ query: PostgresQuery, on connection: PostgresConnection) throws -> [PostgresRow] {
        let result = connection.query(query, logger: logger)
        guard let timeout = answerTimeout else { return try result.wait().rows }
        let deadline = ContinuousClock.now + timeout
        let expired = connection.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            connection.close().whenComplete { _ in }
        }
        defer { expired.cancel() }
        do {
            return try result.wait().rows
        } catch {
            guard ContinuousClock.now >= deadline else { throw error }
            try? connection.close().wait()  // closed once this returns: the next query reconnects
            throw NoAnswer(timeout: timeout)
        }
    }

    private struct NoAnswer: Error, CustomStringConvertible {
        var timeout: Duration
        var description: String { "no answer within \(timeout): connection closed" }
    }

    /// Runs one statement given as text without parameters (DDL, BEGIN, COMMIT).
    func execute(_ sql: String) throws {
        try query(PostgresQuery(unsafeSQL: sql), context: String(sql.prefix(60)))
    }

    /// Runs a session setting now and after every reconnect.
    func keep(_ setting: String) throws {
        try execute(setting)
        setup.append(setting)
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// The first column of the first row, decoded as `T` (nil when there is no row or it is NULL).
    func scalar<T: PostgresDecodable>(_ query: PostgresQuery, as type: T.Type, context: String) throws -> T? {
        guard let row = try self.query(query, context: context).first else { return nil }
        let cell = row.makeRandomAccess()[0]
        return cell.bytes == nil ? nil : try cell.decode(T.self)
    }

    deinit { close() }

    func close() {
        if let connection { try? connection.close().wait() }
        connection = nil
    }

    static func ledgerError(_ error: any Error, context: String) -> LedgerError {
        if let error = error as? LedgerError { return error }
        if let error = error as? PSQLError {
            // PSQLError's own description hides everything; the server's fields are safe to show.
            if let info = error.serverInfo {
                return .postgres(state: info[.sqlState] ?? "", message: info[.message] ?? "\(error.code)", context: context)
            }
            return .postgres(state: "", message: "\(error.code)", context: context)
        }
        return .postgres(state: "", message: String(describing: error), context: context)
    }
}

/// Reads a column of a result row with PostgresNIO's decoders, naming the column on failure.
extension PostgresRandomAccessRow {
    func value<T: PostgresDecodable>(_ index: Int, as type: T.Type = T.self) throws -> T {
        do {
            return try self[index].decode(T.self)
        } catch {
            throw LedgerError.invalidRow("column \(index) (\(self[index].columnName)): \(error)")
        }
    }
}

/// A PostgreSQL array parameter that may hold NULLs (PostgresNIO's `Array` encoding has no
/// nullable elements), in the binary array format: header, then per element its length (-1 for
/// NULL) and bytes. Used to insert a batch of rows as one `unnest(...)` statement.
struct NullableArray<Element: PostgresArrayEncodable & PostgresNonThrowingEncodable>: PostgresNonThrowingEncodable {
    var elements: [Element?]

    init(_ elements: [Element?]) { self.elements = elements }

    static var psqlType: PostgresDataType { Element.psqlArrayType }
    static var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        buffer.writeInteger(elements.isEmpty ? 0 : 1, as: Int32.self)  // dimensions
        buffer.writeInteger(elements.contains { $0 == nil } ? 1 : 0, as: Int32.self)  // has NULLs
        buffer.writeInteger(Element.psqlType.rawValue)
        guard !elements.isEmpty else { return }
        buffer.writeInteger(Int32(elements.count))
        buffer.writeInteger(1, as: Int32.self)  // lower bound
        for element in elements {
            guard let element else {
                buffer.writeInteger(-1, as: Int32.self)
                continue
            }
            let lengthAt = buffer.writerIndex
            buffer.writeInteger(0, as: Int32.self)
            element.encode(into: &buffer, context: context)
            buffer.setInteger(Int32(buffer.writerIndex - lengthAt - 4), at: lengthAt)
        }
    }
}

import Foundation
import Metering
import Testing
@testable import Ledger
import LedgerTestSupport

/// Retry flags at the edge of what the writer keeps in memory.
@Suite struct RetryTrackerTests {
    static func call(_ id: String, user: String, hash: Int64, minutes: Double) -> LedgerEntry {
        let start = Int64(minutes * 60_000_000)
        return LedgerEntry(id: id, requestId: id, startedAt: start, endedAt: start + 1_000, user: user,
                           dialect: .openai, route: "chat.completions", status: 200, outcome: .ok,
                           requestHash: hash)
    }

    @Test("a call decided from the ledger but inside the memory horizon still counts for the calls after it")
    func ledgerDecidedCallStaysInMemory() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        // Move the horizon: the latest start is 20 min, so memory keeps calls from the horizon on
        // (20 min - the 2 min retry window - the lateness).
        let horizon = 20 - 2 - Double(RetryTracker.lateness) / 60_000_000
        #expect(appendAll([Self.call("x", user: "v", hash: 1, minutes: 0)], to: writer).isEmpty)
        #expect(appendAll([Self.call("y", user: "v", hash: 2, minutes: 20)], to: writer).isEmpty)
        // n (horizon + 10 s): its window reaches before the horizon, so it is decided from the ledger.
        #expect(appendAll([Self.call("n", user: "u", hash: 7, minutes: horizon + 10.0 / 60)], to: writer).isEmpty)
        // m (115 s after n): decided in memory; n, with the same body, makes it a retry.
        #expect(appendAll([Self.call("m", user: "u", hash: 7, minutes: horizon + 125.0 / 60)], to: writer).isEmpty)
        writer.close()
        let connection = try SQLiteConnection(path: dir.path())
        defer { connection.close() }
        #expect(try connection.scalarInt("SELECT retry FROM calls WHERE id = 'n'") == 0)
        #expect(try connection.scalarInt("SELECT retry FROM calls WHERE id = 'm'") == 1)
    }

    @Test("a retry arriving in order is inserted with its flag; only calls a late row turns into retries are updated")
    func flagWrittenWithTheRow() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        // Every UPDATE of a flag leaves a line, by a trigger in the ledger itself.
        let connection = try SQLiteConnection(path: dir.path())
        defer { connection.close() }
        try connection.execute("""
            CREATE TABLE retry_updates (seq INTEGER PRIMARY KEY, id TEXT);
            CREATE TRIGGER retry_updated AFTER UPDATE OF retry ON calls BEGIN
                INSERT INTO retry_updates (id) VALUES (new.id);
            END;
            """)
        let calls = [
            Self.call("a", user: "u", hash: 1, minutes: 0),
            Self.call("b", user: "u", hash: 1, minutes: 0.5),  // in order: a retry of a
            Self.call("c", user: "u", hash: 1, minutes: 0.2),  // late, still after a: a retry
            Self.call("d", user: "v", hash: 2, minutes: 1.0),
            Self.call("e", user: "v", hash: 2, minutes: 0.9),  // late, first: d becomes a retry
        ]
        #expect(appendAll(calls, to: writer).isEmpty)
        writer.close()
        for (id, retry) in [("a", 0), ("b", 1), ("c", 1), ("d", 1), ("e", 0)] {
            #expect(try connection.scalarInt("SELECT retry FROM calls WHERE id = '\(id)'") == Int64(retry), "\(id)")
        }
        #expect(try connection.scalarInt("SELECT COUNT(*) FROM retry_updates") == 1)
        #expect(try connection.scalarInt("SELECT COUNT(*) FROM retry_updates WHERE id = 'd'") == 1)
    }

    @Test("one body repeated many times: every call after the first within the window is a retry")
    func repeatedBody() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        let calls = (0..<3_000).map { Self.call("c\($0)", user: "u", hash: 9, minutes: Double($0) / 60) }
        #expect(appendAll(calls, to: writer).isEmpty)
        writer.close()
        let connection = try SQLiteConnection(path: dir.path())
        defer { connection.close() }
        #expect(try connection.scalarInt("SELECT COUNT(*) FROM calls WHERE retry = 1") == 2_999)
        #expect(try connection.scalarInt("SELECT retry FROM calls WHERE id = 'c0'") == 0)
    }
}

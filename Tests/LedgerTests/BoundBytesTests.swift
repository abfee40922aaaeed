import Testing
@testable import Ledger
import LedgerTestSupport

/// Bound text and blobs are read by SQLite in place from the statement's own buffers: every
/// value of a row must arrive intact, however many share a buffer or outgrow one, row after row.
@Suite struct BoundBytesTests {
    /// Values of every size that matters: empty, short, filling a buffer, larger than one.
    static func text(row: Int, column: Int) -> String {
        let sizes = [0, 1, 15, 16, 300, BoundBytes.chunkSize - 1, BoundBytes.chunkSize + 1, 3 * BoundBytes.chunkSize]
        let size = sizes[(row + column) % sizes.count]
        return String(repeating: Character(UnicodeScalar(UInt8(97 + (row * 7 + column) % 26))), count: size) + "é\(row)"
    }

    static func blob(row: Int) -> [UInt8] {
        (0..<(row % 5 == 0 ? 0 : row * 37)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ row) }
    }

    @Test func rowsBoundInPlaceArriveIntact() throws {
        let directory = try TemporaryDirectory()
        let connection = try SQLiteConnection(path: directory.path())
        try connection.execute("CREATE TABLE t (row INTEGER, a TEXT, b TEXT, c TEXT, d TEXT, e BLOB)")
        let insert = try connection.prepare("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        let rows = 60
        for row in 0..<rows {
            insert.bind(row, at: 1)
            for column in 2...5 {
                // A nil now and then: the next row's text takes the parameter back.
                insert.bind(row % 11 == column ? nil : Self.text(row: row, column: column), at: Int32(column))
            }
            insert.bind(blob: Self.blob(row: row), at: 6)
            try insert.runRebinding()
        }
        let select = try connection.prepare("SELECT row, a, b, c, d, e, typeof(e) FROM t ORDER BY row")
        var seen = 0
        while try select.step() {
            let row = select.int(at: 0)
            for column in 2...5 {
                let expected = row % 11 == column ? nil : Self.text(row: row, column: column)
                #expect(select.optionalString(at: Int32(column - 1)) == expected, "row \(row) column \(column)")
            }
            let blob = select.withBlob(at: 5) { Array($0) }
            #expect(blob == Self.blob(row: row), "row \(row) blob")
            #expect(select.string(at: 6) == "blob", "an empty blob stays a blob, not NULL")
            seen += 1
        }
        #expect(seen == rows)
        // Buffers are reused row after row: what is kept is about the largest row's worth
        // (here under 20 buffers), not all rows' (over 150).
        let allRows = (0..<rows).reduce(0) { sum, row in
            sum + (2...5).reduce(0) { $0 + Self.text(row: row, column: $1).utf8.count } + Self.blob(row: row).count
        }
        #expect(allRows > 150 * BoundBytes.chunkSize)
        #expect(insert.boundCapacity < 20 * BoundBytes.chunkSize)
    }

    @Test func aStatementRunAgainAfterResetReadsItsNewValues() throws {
        let directory = try TemporaryDirectory()
        let connection = try SQLiteConnection(path: directory.path())
        let echo = try connection.prepare("SELECT ?1 || '|' || ?2")
        for round in 0..<5 {
            echo.bind("first \(round)", at: 1)
            echo.bind(String(repeating: "x", count: round * 2_000), at: 2)
            #expect(try echo.step())
            #expect(echo.string(at: 0) == "first \(round)|" + String(repeating: "x", count: round * 2_000))
            echo.reset()
        }
    }
}

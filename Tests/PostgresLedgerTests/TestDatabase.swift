import Foundation
import PostgresLedger
import XCTest

/// The throwaway PostgreSQL server `scripts/with-postgres.sh` starts for the test run
/// (`TOKENCTL_TEST_POSTGRES`). Without it these tests skip, loudly.
enum TestDatabase {
    static var url: String? { ProcessInfo.processInfo.environment["TOKENCTL_TEST_POSTGRES"] }

    static func requireURL(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        guard let url else {
            let message = "SKIPPED: no PostgreSQL (run the tests through scripts/with-postgres.sh, as `make test` does)"
            FileHandle.standardError.write(Data("\n### \(message)\n".utf8))
            throw XCTSkip(message, file: file, line: line)
        }
        return url
    }
}

final class PostgresLocationTests: XCTestCase {
    func testParsesURLWithoutLeakingThePassword() throws {
        let location = try PostgresLocation(url: "postgres://finance:s%40cret@db.internal:6432/ledger")
        XCTAssertEqual(location.host, "db.internal")
        XCTAssertEqual(location.port, 6432)
        XCTAssertEqual(location.user, "finance")
        XCTAssertEqual(location.password, "s@cret")
        XCTAssertEqual(location.database, "ledger")
        XCTAssertFalse(location.description.contains("cret"))
        XCTAssertThrowsError(try PostgresLocation(url: "postgres:///nohost"))
        XCTAssertThrowsError(try PostgresLocation(url: "postgres://u@h/db?sslmode=verify-full"))
    }

    /// A password kept off the command line: PGPASSWORD, as libpq reads it, when the URL has none.
    func testTakesThePasswordFromPGPASSWORDWhenTheURLHasNone() throws {
        let environment = ["PGPASSWORD": "from-env"]
        XCTAssertEqual(try PostgresLocation(url: "postgres://finance@db/ledger", environment: environment).password, "from-env")
        XCTAssertEqual(try PostgresLocation(url: "postgres://finance:inline@db/ledger", environment: environment).password, "inline")
        XCTAssertNil(try PostgresLocation(url: "postgres://finance@db/ledger", environment: ["PGPASSWORD": ""]).password)
        XCTAssertNil(try PostgresLocation(url: "postgres://finance@db/ledger", environment: [:]).password)
        XCTAssertFalse(try PostgresLocation(url: "postgres://finance@db/ledger?sslmode=prefer", environment: [:]).requireTLS)
    }
}

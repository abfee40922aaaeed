import Foundation
import Ledger
import LedgerTestSupport
@testable import PostgresLedger
import XCTest

final class PostgresKeyStoreTests: XCTestCase {
    func testInsertListRevokeAndStamp() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let store = try PostgresKeyStore(location: db.location)
        let other = try PostgresKeyStore(location: db.location)
        defer { store.close(); other.close() }
        let stamp0 = try other.changeStamp()
        let alice = APIKeyRecord(id: "key_a", secretHash: "h1", user: "alice", team: "research", createdAt: 10)
        let admin = APIKeyRecord(id: "key_b", secretHash: "h2", user: "root", createdAt: 20, admin: true)
        try store.insert(alice)
        try store.insert(admin)
        XCTAssertNotEqual(try other.changeStamp(), stamp0)
        XCTAssertEqual(try other.list(), [alice, admin])
        XCTAssertThrowsError(try store.insert(APIKeyRecord(id: "key_c", secretHash: "h1", user: "bob"))) { error in
            XCTAssertTrue((error as? LedgerError)?.isConstraintViolation == true, "\(error)")
        }
        let stamp1 = try other.changeStamp()
        XCTAssertTrue(try store.revoke(id: "key_a", at: 99))
        XCTAssertFalse(try store.revoke(id: "key_a", at: 100))
        XCTAssertFalse(try store.revoke(id: "nope", at: 100))
        XCTAssertNotEqual(try other.changeStamp(), stamp1)
        XCTAssertEqual(try other.activeKeys(), [admin])
        XCTAssertEqual(try other.list().first?.revokedAt, 99)
        XCTAssertEqual(try other.key(id: "key_a")?.revokedAt, 99)
        XCTAssertEqual(try other.key(id: "key_b"), admin)
        XCTAssertNil(try other.key(id: "nope"))
        XCTAssertNil(try other.key(id: "key_a' OR 1=1 --"))
        store.close()
        XCTAssertThrowsError(try store.list())
    }

    /// The listings KeyStoreTests checks on SQLite, on PostgreSQL: the same keys in the same order.
    func testListingQueriesMatchSQLite() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let store = try PostgresKeyStore(location: db.location)
        defer { store.close() }
        for key in KeyListingFixture.keys { try store.insert(key) }
        for (query, ids) in KeyListingFixture.queries() {
            XCTAssertEqual(try store.keys(query).map(\.id), ids, "\(query)")
        }
    }
}

import Foundation
import Synchronization
import Testing
@testable import Ledger
import LedgerTestSupport

@Suite struct KeyStoreTests {
    @Test("listings filter by user, team and state, and page oldest first (no creation time first, then by id)")
    func listingQueries() throws {
        let dir = try TemporaryDirectory()
        let store = try KeyStore(path: dir.path())
        for key in KeyListingFixture.keys { try store.insert(key) }
        for (query, ids) in KeyListingFixture.queries() {
            #expect(try store.keys(query).map(\.id) == ids, "\(query)")
        }
        #expect(try store.activeKeys().map(\.id) == ["k_z", "k_a", "k_b", "k_d"])
    }

    @Test func insertListRevoke() throws {
        let dir = try TemporaryDirectory()
        let store = try KeyStore(path: dir.path())
        let stamp0 = try store.changeStamp()
        try store.insert(APIKeyRecord(id: "k1", secretHash: "hash1", user: "alice", team: "research", createdAt: 1))
        try store.insert(APIKeyRecord(id: "k2", secretHash: "hash2", user: "bob", createdAt: 2))
        let stamp1 = try store.changeStamp()
        #expect(stamp1 != stamp0)
        #expect(try store.list().map(\.id) == ["k1", "k2"])
        #expect(try store.list()[0] == APIKeyRecord(id: "k1", secretHash: "hash1", user: "alice", team: "research", createdAt: 1))

        #expect(try store.revoke(id: "k1", at: 99))
        #expect(try !store.revoke(id: "k1", at: 100), "already revoked")
        #expect(try !store.revoke(id: "nope"))
        let stamp2 = try store.changeStamp()
        #expect(stamp2 != stamp1)
        #expect(try store.activeKeys().map(\.id) == ["k2"])
        let all = try store.list()
        #expect(all.count == 2)
        #expect(all[0].revokedAt == 99 && all[0].isRevoked)
        #expect(try store.key(id: "k1") == all[0] && store.key(id: "k2") == all[1])
        #expect(try store.key(id: "nope") == nil && store.key(id: "k1' OR 1=1 --") == nil)
        #expect(try store.changeStamp() == stamp2, "reads do not move the stamp")
    }

    /// A serving gateway's writer can hold the ledger's lock for seconds under load (commits of
    /// a second and more were seen with 20,000 users): a key's write waits, where it failed
    /// ("database is locked") once SQLite's 5 s timeout passed.
    @Test func aKeyWaitsForABusyLedgerLongerThanFiveSeconds() throws {
        let dir = try TemporaryDirectory()
        let store = try KeyStore(path: dir.path())
        defer { store.close() }
        let writer = try SQLiteConnection(path: dir.path())
        try writer.execute("BEGIN IMMEDIATE")
        let inserted = DispatchSemaphore(value: 0)
        let failure = Mutex<String?>(nil)
        Thread.detachNewThread {
            do {
                try store.insert(APIKeyRecord(id: "k1", secretHash: "hash1", user: "alice", createdAt: 1))
            } catch {
                failure.withLock { $0 = "\(error)" }
            }
            inserted.signal()
        }
        Thread.sleep(forTimeInterval: 5.5)
        try writer.execute("COMMIT")
        inserted.wait()
        #expect(failure.withLock { $0 } == nil)
        #expect(try store.list().map(\.id) == ["k1"])
    }

    @Test func duplicatesAreConstraintViolations() throws {
        let dir = try TemporaryDirectory()
        let store = try KeyStore(path: dir.path())
        try store.insert(APIKeyRecord(id: "k1", secretHash: "hash1", user: "alice"))
        for duplicate in [APIKeyRecord(id: "k1", secretHash: "other", user: "x"),
                          APIKeyRecord(id: "k9", secretHash: "hash1", user: "x")] {
            do {
                try store.insert(duplicate)
                Issue.record("duplicate accepted")
            } catch let error as LedgerError {
                #expect(error.isConstraintViolation)
            }
        }
        #expect(try store.list().count == 1)
    }

    @Test func stampSeesChangesFromAnotherProcess() throws {
        let dir = try TemporaryDirectory()
        let server = try KeyStore(path: dir.path())
        let cli = try KeyStore(path: dir.path())
        let before = try server.changeStamp()
        try cli.insert(APIKeyRecord(id: "k1", secretHash: "h", user: "u"))
        #expect(try server.changeStamp() != before)
        let afterInsert = try server.changeStamp()
        // A revoke through raw SQL (e.g. an admin's sqlite3 shell) moves it too.
        let raw = try SQLiteConnection(path: dir.path())
        try raw.execute("UPDATE api_keys SET revoked_at = 5 WHERE id = 'k1'")
        #expect(try server.changeStamp() != afterInsert)
        #expect(try server.activeKeys().isEmpty)
    }

    @Test func adminFlagRoundTrips() throws {
        let dir = try TemporaryDirectory()
        let store = try KeyStore(path: dir.path())
        try store.insert(APIKeyRecord(id: "k1", secretHash: "h1", user: "ops", createdAt: 1, admin: true))
        try store.insert(APIKeyRecord(id: "k2", secretHash: "h2", user: "alice", createdAt: 2))
        #expect(try store.list().map(\.admin) == [true, false])
        #expect(try store.activeKeys().map(\.admin) == [true, false])
        // Keys written before the flag existed (or by hand) default to ordinary keys.
        let raw = try SQLiteConnection(path: dir.path())
        try raw.execute("INSERT INTO api_keys (id, secret_hash, user) VALUES ('k3', 'h3', 'bob')")
        #expect(try store.list().first { $0.id == "k3" }?.admin == false)
    }
}

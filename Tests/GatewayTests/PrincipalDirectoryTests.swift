import Gateway
import Ledger
import Logging
import NIOConcurrencyHelpers
import Policy
import Testing

/// The directory of keys in memory: a change made in this process applies at once, whatever
/// the store can do then, and a reload that read the store before it cannot undo it.
@Suite struct PrincipalDirectoryTests {
    /// A key store in memory whose reads can fail, or run a step in the middle of a read.
    final class ScriptedKeyStore: APIKeyStore {
        struct Script {
            var keys: [APIKeyRecord] = []
            var unreadable = false
            var beforeRead: (@Sendable () -> Void)?
            var duringRead: (@Sendable () -> Void)?
        }
        let script = NIOLockedValueBox(Script())

        func insert(_ key: APIKeyRecord) throws { script.withLockedValue { $0.keys.append(key) } }
        func key(id: String) throws -> APIKeyRecord? { try list().first { $0.id == id } }
        /// The keys, active or revoked as `query` asks (the directory reads both).
        func keys(_ query: KeyQuery) throws -> [APIKeyRecord] {
            script.withLockedValue { $0.beforeRead }?()  // once the reload began, before it reads
            let (keys, unreadable, step) = script.withLockedValue { ($0.keys, $0.unreadable, $0.duringRead) }
            if unreadable { throw LedgerError.sqlite(code: 10, message: "disk I/O error", context: "reading keys") }
            step?()  // after the keys were read, before the directory swaps them in
            return keys.filter { query.revoked == nil || $0.isRevoked == query.revoked }
        }
        func revoke(id: String, at time: Int64) throws -> Bool {
            script.withLockedValue { script in
                guard let i = script.keys.firstIndex(where: { $0.id == id && !$0.isRevoked }) else { return false }
                script.keys[i].revokedAt = time
                return true
            }
        }
        func changeStamp() throws -> Int64 { 0 }
        func close() {}
    }

    static func key(_ user: String) -> (record: APIKeyRecord, secret: String) {
        let (id, secret) = APIKeySecret.generate()
        return (APIKeyRecord(id: id, secretHash: APIKeySecret.hash(secret), user: user), secret)
    }

    @Test("a key admitted works and a key forgotten stops at once, with the store unreadable")
    func changesNeedNoRead() throws {
        let store = ScriptedKeyStore()
        let alice = Self.key("alice"), bob = Self.key("bob")
        try store.insert(alice.record)
        let directory = try PrincipalDirectory(keyStore: store, logger: Logger(label: "test"))
        #expect(directory.principal(forSecret: alice.secret)?.user == "alice")
        store.script.withLockedValue { $0.unreadable = true }
        #expect(throws: LedgerError.self) { try directory.reload() }

        directory.admit(bob.record)
        directory.forget(alice.record)
        #expect(directory.principal(forSecret: bob.secret)?.user == "bob")
        #expect(directory.principal(forSecret: alice.secret) == nil)
        #expect(directory.holder(ofSecret: alice.secret).revoked?.user == "alice")
        #expect(directory.all.map(\.user) == ["bob"])
    }

    @Test("a reload that read the store before a key was forgotten or made keeps the change, and the keys it read")
    func changesDuringAReloadStay() throws {
        let store = ScriptedKeyStore()
        let alice = Self.key("alice"), bob = Self.key("bob"), carol = Self.key("carol")
        try store.insert(alice.record)
        let directory = try PrincipalDirectory(keyStore: store, logger: Logger(label: "test"))
        // Carol's key comes from elsewhere (`keys create`): only a read of the store finds it.
        try store.insert(carol.record)
        // The admin API's revoke and create land while the reload holds the keys it read.
        store.script.withLockedValue {
            $0.duringRead = {
                _ = try? store.revoke(id: alice.record.id, at: 1)
                directory.forget(alice.record)
                try? store.insert(bob.record)
                directory.admit(bob.record)
            }
        }
        try directory.reload()
        #expect(directory.principal(forSecret: alice.secret) == nil)
        #expect(directory.holder(ofSecret: alice.secret).revoked?.user == "alice")
        #expect(directory.principal(forSecret: bob.secret)?.user == "bob")
        #expect(directory.holder(ofSecret: bob.secret).revoked == nil)
        #expect(directory.principal(forSecret: carol.secret)?.user == "carol")
        // A reload that fails leaves the keys as they were, and the next one reads the store as
        // it is: a change made in between is not replayed onto it (dave's key, made through
        // the API, then revoked with `tokenctl keys revoke`, stays revoked).
        store.script.withLockedValue { $0.duringRead = nil; $0.unreadable = true }
        #expect(throws: LedgerError.self) { try directory.reload() }
        store.script.withLockedValue { $0.unreadable = false }
        let dave = Self.key("dave")
        try store.insert(dave.record)
        directory.admit(dave.record)
        _ = try store.revoke(id: dave.record.id, at: 2)
        try directory.reload()
        #expect(Set(directory.all.map(\.user)) == ["bob", "carol"])
        #expect(directory.principal(forSecret: dave.secret) == nil)
        let daves = directory.holder(ofSecret: dave.secret)
        #expect(daves.active == nil && daves.revoked?.keyId == dave.record.id)
        #expect(directory.holder(ofSecret: "tk-" + String(repeating: "b", count: 40)).revoked == nil)
    }

    @Test("a key made through the API during a reload and revoked elsewhere before the reload read it stays revoked")
    func revocationDuringAReloadIsFinal() throws {
        let store = ScriptedKeyStore()
        let directory = try PrincipalDirectory(keyStore: store, logger: Logger(label: "test"))
        let erin = Self.key("erin")
        // The admin API makes erin's key while the poll reloads; `tokenctl keys revoke` revokes
        // it before the reload reads the store, so the read finds it revoked and the admission
        // is replayed onto that.
        store.script.withLockedValue {
            $0.beforeRead = {
                try? store.insert(erin.record)
                directory.admit(erin.record)
                _ = try? store.revoke(id: erin.record.id, at: 3)
            }
        }
        try directory.reload()
        #expect(directory.principal(forSecret: erin.secret) == nil)
        #expect(directory.holder(ofSecret: erin.secret).revoked?.keyId == erin.record.id)
        // Nor does an admission after the revocation was seen bring it back.
        store.script.withLockedValue { $0.beforeRead = nil }
        directory.admit(erin.record)
        #expect(directory.principal(forSecret: erin.secret) == nil)
    }
}

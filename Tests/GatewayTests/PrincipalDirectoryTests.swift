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
            var duringRead: (@Sendable () -> Void)?
        }
        let script = NIOLockedValueBox(Script())

        func insert(_ key: APIKeyRecord) throws { script.withLockedValue { $0.keys.append(key) } }
        func list() throws -> [APIKeyRecord] { try activeKeys() }
        func key(id: String) throws -> APIKeyRecord? { try list().first { $0.id == id } }
        func activeKeys() throws -> [APIKeyRecord] {
            let (keys, unreadable, step) = script.withLockedValue { ($0.keys, $0.unreadable, $0.duringRead) }
            if unreadable { throw LedgerError.sqlite(code: 10, message: "disk I/O error", context: "reading keys") }
            step?()  // after the keys were read, before the directory swaps them in
            return keys.filter { !$0.isRevoked }
        }
        func revoke(id: String, at time: Int64) throws -> Bool {
            script.withLockedValue { $0.keys.removeAll { $0.id == id } }
            return true
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
        #expect(directory.all.map(\.user) == ["bob"])
    }

    @Test("a reload that read the store before a key was forgotten does not bring the key back")
    func staleReloadIsDropped() throws {
        let store = ScriptedKeyStore()
        let alice = Self.key("alice")
        try store.insert(alice.record)
        let directory = try PrincipalDirectory(keyStore: store, logger: Logger(label: "test"))
        // The revoke lands while the reload holds the keys it read, alice's among them.
        store.script.withLockedValue {
            $0.duringRead = {
                _ = try? store.revoke(id: alice.record.id, at: 1)
                directory.forget(alice.record)
            }
        }
        #expect(try directory.reload() == false)
        #expect(directory.principal(forSecret: alice.secret) == nil)
        // The next read sees the store as it is now, and is used.
        store.script.withLockedValue { $0.duringRead = nil }
        #expect(try directory.reload() == true)
        #expect(directory.principal(forSecret: alice.secret) == nil && directory.all.isEmpty)
    }
}

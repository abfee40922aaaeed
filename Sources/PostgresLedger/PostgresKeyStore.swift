import Foundation
import Ledger
import PostgresNIO

/// The `api_keys` table of a PostgreSQL ledger: every replica authenticates against the same
/// keys, and `changeStamp` (bumped by a trigger on any change) tells them when to reload.
/// Thread-safe: calls are serialised by a lock, and all are short.
public final class PostgresKeyStore: APIKeyStore, @unchecked Sendable {
    private let lock = NSLock()
    private let session: PostgresSession
    private var isClosed = false

    private static let columns = "id, secret_hash, \"user\", team, created_at, revoked_at, admin"

    public init(location: PostgresLocation) throws {
        session = try PostgresSession(location)
        do {
            try PostgresSchema.prepare(session)
        } catch {
            session.close()
            throw error
        }
        // Key statements are tiny: a hung connection must not hold the key poller (or a stop) for ever.
        session.answerTimeout = .seconds(30)
    }

    /// Adds a key. Throws a constraint violation (`isConstraintViolation`) if the id or hash exists.
    public func insert(_ key: APIKeyRecord) throws {
        try locked {
            try session.query("""
                INSERT INTO api_keys (\(unescaped: Self.columns))
                VALUES (\(key.id), \(key.secretHash), \(key.user), \(key.team), \(key.createdAt), \(key.revokedAt), \(key.admin))
                """, context: "insert key \(key.id)")
        }
    }

    public func keys(_ query: KeyQuery) throws -> [APIKeyRecord] {
        let values = query.bindings
        var binds = PostgresBindings(capacity: 6)
        binds.append(values.user)
        binds.append(values.team)
        binds.append(values.revoked)
        binds.append(values.afterTime)
        binds.append(values.afterID)
        binds.append(values.limit)
        return try self.query(PostgresQuery(unsafeSQL: KeyQuery.sql(columns: Self.columns) { "$\($0)::\(KeyQuery.parameterTypes[$0 - 1])" }, binds: binds),
                              context: "list keys")
    }

    public func key(id: String) throws -> APIKeyRecord? {
        try query("SELECT \(unescaped: Self.columns) FROM api_keys WHERE id = \(id)", context: "read key \(id.prefix(100))").first
    }

    /// Marks the key revoked at `time` (Unix µs). False if no such key or it was already revoked.
    @discardableResult
    public func revoke(id: String, at time: Int64 = UnixTime.nowMicros()) throws -> Bool {
        try locked {
            !(try session.query("""
                UPDATE api_keys SET revoked_at = \(time) WHERE id = \(id) AND revoked_at IS NULL RETURNING id
                """, context: "revoke key \(id)").isEmpty)
        }
    }

    public func changeStamp() throws -> Int64 {
        try locked {
            guard let stamp = try session.scalar("SELECT value FROM tokenctl_meta WHERE name = 'api_keys_stamp'",
                                                 as: Int64.self, context: "read the keys' change stamp") else {
                throw LedgerError.invalidRow("tokenctl_meta.api_keys_stamp missing")
            }
            return stamp
        }
    }

    /// Closes the store; later calls throw `LedgerError.closed` (a poller may still be running).
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        guard !isClosed else { return }
        isClosed = true
        session.close()
    }

    private func query(_ sql: PostgresQuery, context: String) throws -> [APIKeyRecord] {
        try locked {
            try session.query(sql, context: context).map { row in
                let r = row.makeRandomAccess()
                return APIKeyRecord(id: try r.value(0), secretHash: try r.value(1), user: try r.value(2),
                                    team: try r.value(3), createdAt: try r.value(4), revokedAt: try r.value(5),
                                    admin: try r.value(6))
            }
        }
    }

    @discardableResult
    private func locked<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        guard !isClosed else { throw LedgerError.closed }
        return try body()
    }
}

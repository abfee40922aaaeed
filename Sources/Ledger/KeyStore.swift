import Foundation

/// A client API key as stored: the secret itself is never stored, only its hash (made by Policy).
public struct APIKeyRecord: Sendable, Hashable {
    /// Public identifier of the key (shown in listings and stored in ledger rows as `key_id`).
    public var id: String
    public var secretHash: String
    public var user: String
    public var team: String?
    /// Unix microseconds.
    public var createdAt: Int64?
    /// Unix microseconds; nil while the key is active.
    public var revokedAt: Int64?
    /// An admin key opens the admin API and dashboard, and nothing else (it makes no model calls).
    public var admin: Bool

    public var isRevoked: Bool { revokedAt != nil }

    public init(id: String, secretHash: String, user: String, team: String? = nil,
                createdAt: Int64? = nil, revokedAt: Int64? = nil, admin: Bool = false) {
        self.id = id
        self.secretHash = secretHash
        self.user = user
        self.team = team
        self.createdAt = createdAt
        self.revokedAt = revokedAt
        self.admin = admin
    }
}

/// The `api_keys` table, on its own connection (usable while a `LedgerWriter` writes the same file).
/// Thread-safe: calls are serialised by a lock, and all are short.
public final class KeyStore: @unchecked Sendable {
    private let lock = NSLock()
    private let connection: SQLiteConnection
    private var isClosed = false
    private let stampQuery: Statement

    private static let columns = "id, secret_hash, user, team, created_at, revoked_at, admin"

    /// Opens (creating and migrating if needed) the ledger at `path`. A serving gateway's writer
    /// can hold the ledger's lock for seconds under load (commits of 0.25 s back to back with
    /// 20,000 users at 4,000 calls/s): a key's write waits up to `busyTimeoutMillis` for a gap.
    public init(path: String, busyTimeoutMillis: Int32 = 30_000) throws {
        connection = try SQLiteConnection(path: path, busyTimeoutMillis: busyTimeoutMillis)
        try connection.configureForLedger()
        try Schema.migrate(connection)
        stampQuery = try connection.prepare("SELECT value FROM meta WHERE name = 'api_keys_stamp'")
    }

    /// Adds a key. Throws a constraint violation (`isConstraintViolation`) if the id or hash exists.
    public func insert(_ key: APIKeyRecord) throws {
        try locked {
            let s = try connection.prepare("INSERT INTO api_keys (\(Self.columns)) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            s.bind(key.id, at: 1)
            s.bind(key.secretHash, at: 2)
            s.bind(key.user, at: 3)
            s.bind(key.team, at: 4)
            s.bind(key.createdAt, at: 5)
            s.bind(key.revokedAt, at: 6)
            s.bind(key.admin, at: 7)
            try s.run()
        }
    }

    /// Every key, revoked ones included, oldest first.
    public func keys(_ query: KeyQuery) throws -> [APIKeyRecord] {
        try records(KeyQuery.sql(columns: Self.columns) { "?\($0)" }) { s in
            let values = query.bindings
            s.bind(values.user, at: 1)
            s.bind(values.team, at: 2)
            s.bind(values.revoked.map { $0 ? 1 : 0 } as Int64?, at: 3)
            s.bind(values.afterTime, at: 4)
            s.bind(values.afterID, at: 5)
            s.bind(values.limit, at: 6)
        }
    }

    public func key(id: String) throws -> APIKeyRecord? {
        try records("SELECT \(Self.columns) FROM api_keys WHERE id = ?1") { $0.bind(id, at: 1) }.first
    }

    /// Marks the key revoked at `time` (Unix µs). False if no such key or it was already revoked.
    @discardableResult
    public func revoke(id: String, at time: Int64 = UnixTime.nowMicros()) throws -> Bool {
        try locked {
            let s = try connection.prepare("UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL")
            s.bind(time, at: 1)
            s.bind(id, at: 2)
            try s.run()
            return connection.changes > 0
        }
    }

    /// A number that changes whenever a key is inserted, revoked or deleted (by any process):
    /// poll it and reload keys only when it moved. One indexed read.
    public func changeStamp() throws -> Int64 {
        try locked {
            defer { stampQuery.reset() }
            guard try stampQuery.step() else { throw LedgerError.invalidRow("meta.api_keys_stamp missing") }
            return stampQuery.int64(at: 0)
        }
    }

    /// Closes the store; later calls throw `LedgerError.closed` (a poller may still be running).
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        guard !isClosed else { return }
        isClosed = true
        stampQuery.finalize()
        connection.close()
    }

    private func records(_ sql: String, binding bind: (Statement) -> Void) throws -> [APIKeyRecord] {
        try locked {
            let s = try connection.prepare(sql)
            bind(s)
            var keys: [APIKeyRecord] = []
            while try s.step() {
                keys.append(APIKeyRecord(id: s.string(at: 0), secretHash: s.string(at: 1), user: s.string(at: 2),
                                         team: s.optionalString(at: 3), createdAt: s.optionalInt64(at: 4),
                                         revokedAt: s.optionalInt64(at: 5), admin: s.int64(at: 6) != 0))
            }
            return keys
        }
    }

    private func locked<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        guard !isClosed else { throw LedgerError.closed }
        return try body()
    }
}

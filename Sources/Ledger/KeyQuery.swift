/// Which keys a listing shows, and from where: the filters of `GET /admin/api/keys` and the
/// page it asks for. Keys come oldest first (`created_at`, a key without one first, then `id`),
/// the same order on both backends.
public struct KeyQuery: Sendable, Equatable {
    public var user: String?
    public var team: String?
    /// True: revoked keys only; false: active ones; nil: both.
    public var revoked: Bool?
    /// Keys after this one in the order (the last key of the previous page).
    public var after: KeyCursor?
    /// At most this many; nil for all.
    public var limit: Int?

    public init(user: String? = nil, team: String? = nil, revoked: Bool? = nil, after: KeyCursor? = nil, limit: Int? = nil) {
        self.user = user
        self.team = team
        self.revoked = revoked
        self.after = after
        self.limit = limit
    }

    /// The query on either backend, the same text but for its parameters' spelling (`?1` in
    /// SQLite, `$1` in PostgreSQL), bound in this order: user, team, revoked, the cursor's time
    /// and id, the limit (`bindings`). One statement for every filter: a parameter that is NULL
    /// leaves its filter out. The table has no index for these (it holds one row per key): each
    /// listing reads it whole (20,000 keys: a page of 100 answered in about 10 ms, one user's
    /// keys in about 4).
    public static func sql(columns: String, parameter: (Int) -> String) -> String {
        let p = (1...6).map(parameter)
        return """
            SELECT \(columns) FROM api_keys
            WHERE (\(p[0]) IS NULL OR "user" = \(p[0])) AND (\(p[1]) IS NULL OR team = \(p[1]))
              AND (\(p[2]) IS NULL OR (revoked_at IS NOT NULL) = \(p[2]))
              AND (\(p[3]) IS NULL OR COALESCE(created_at, 0) > \(p[3])
                   OR (COALESCE(created_at, 0) = \(p[3]) AND id > \(p[4])))
            ORDER BY COALESCE(created_at, 0), id
            LIMIT \(p[5])
            """
    }

    /// The SQL types of the parameters, in order: PostgreSQL cannot tell the type of a NULL
    /// compared with NULL (`$1 IS NULL`), so its spelling casts each.
    public static let parameterTypes = ["text", "text", "boolean", "bigint", "text", "bigint"]

    /// The values to bind, in the order `sql` numbers them (no limit: the largest).
    public var bindings: (user: String?, team: String?, revoked: Bool?, afterTime: Int64?, afterID: String?, limit: Int64) {
        (user, team, revoked, after?.createdAt, after?.id, limit.map(Int64.init) ?? Int64.max)
    }
}

/// A place in the keys' order: just after this key.
public struct KeyCursor: Sendable, Equatable {
    public var createdAt: Int64
    public var id: String

    public init(after key: APIKeyRecord) {
        createdAt = key.createdAt ?? 0
        id = key.id
    }
}

import Ledger

/// Keys and listings of them, the same on both backends (KeyStoreTests, PostgresKeyStoreTests).
package enum KeyListingFixture {
    /// Keys for the listing's filters and order: two made in the same microsecond (ordered by
    /// id), one without a creation time (first), one revoked.
    package static let keys = [
        APIKeyRecord(id: "k_b", secretHash: "h1", user: "alice", team: "research", createdAt: 10),
        APIKeyRecord(id: "k_a", secretHash: "h2", user: "bob", team: "research", createdAt: 10),
        APIKeyRecord(id: "k_z", secretHash: "h3", user: "carol", createdAt: nil),
        APIKeyRecord(id: "k_c", secretHash: "h4", user: "alice", createdAt: 20, revokedAt: 30),
        APIKeyRecord(id: "k_d", secretHash: "h5", user: "dave", team: "ops", createdAt: 40, admin: true),
    ]

    /// Queries and the ids they list, the same on both backends (PostgresKeyStoreTests).
    package static func queries() -> [(KeyQuery, [String])] {
        let a = KeyCursor(after: keys[1])  // k_a, created at 10
        return [
            (KeyQuery(), ["k_z", "k_a", "k_b", "k_c", "k_d"]),
            (KeyQuery(user: "alice"), ["k_b", "k_c"]),
            (KeyQuery(team: "research"), ["k_a", "k_b"]),
            (KeyQuery(revoked: true), ["k_c"]),
            (KeyQuery(revoked: false), ["k_z", "k_a", "k_b", "k_d"]),
            (KeyQuery(limit: 2), ["k_z", "k_a"]),
            (KeyQuery(after: a), ["k_b", "k_c", "k_d"]),
            (KeyQuery(after: a, limit: 1), ["k_b"]),
            (KeyQuery(after: KeyCursor(after: keys[2])), ["k_a", "k_b", "k_c", "k_d"]),
            (KeyQuery(user: "alice", revoked: false, after: KeyCursor(after: keys[2])), ["k_b"]),
            (KeyQuery(after: KeyCursor(after: keys[4])), []),
        ]
    }
}

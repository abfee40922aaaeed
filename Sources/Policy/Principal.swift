/// Who is calling: the identity a client key resolves to, and what usage is charged to.
public struct Principal: Sendable, Hashable, Codable, CustomStringConvertible {
    /// What a key may do. The two never overlap: a leaked caller key cannot read everyone's spend,
    /// and an admin key cannot run up a bill.
    public enum Role: String, Sendable, Hashable, Codable {
        /// Calls models through the proxy and is billed for them.
        case caller
        /// Reads the admin API and the dashboard; refused on model routes.
        case admin
    }

    /// Public key id (`key_…`), never the secret.
    public var keyId: String
    public var user: String
    public var team: String?
    public var role: Role

    public init(keyId: String, user: String, team: String? = nil, role: Role = .caller) {
        self.keyId = keyId
        self.user = user
        self.team = team
        self.role = role
    }

    public var isAdmin: Bool { role == .admin }

    public var description: String {
        "\(user)\(team.map { "@\($0)" } ?? "") (\(keyId)\(isAdmin ? ", admin" : ""))"
    }
}

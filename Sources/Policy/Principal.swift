/// Who is calling: the identity a client key resolves to, and what usage is charged to.
public struct Principal: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Public key id (`key_…`), never the secret.
    public var keyId: String
    public var user: String
    public var team: String?

    public init(keyId: String, user: String, team: String? = nil) {
        self.keyId = keyId
        self.user = user
        self.team = team
    }

    public var description: String { "\(user)\(team.map { "@\($0)" } ?? "") (\(keyId))" }
}

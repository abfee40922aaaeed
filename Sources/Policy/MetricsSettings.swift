/// What `GET /metrics` may label by user (`metrics:` in `gateway.yaml`).
///
/// Labels are never taken from what callers send unbounded: per-user series are off by default,
/// and `top` keeps them to the `topUsers` biggest spenders of the current day and month.
public struct MetricsSettings: Sendable, Hashable {
    public enum UserLabels: String, Sendable, Hashable, CaseIterable {
        /// No metric carries a user name.
        case none
        /// `tokenctl_top_user_spend_usd{user,period}` for the `topUsers` biggest spenders.
        case top
    }

    /// Who may read `GET /metrics`.
    public enum Access: String, Sendable, Hashable, CaseIterable {
        /// Anyone who reaches the port (Prometheus' default: scrape configs need no secret).
        case open
        /// Callers presenting an admin key (`Authorization: Bearer`, as Prometheus' `authorization`
        /// setting sends it): teams' spend and the top spenders' names stay with admins.
        case adminKey = "admin_key"
    }

    public var userLabels: UserLabels
    /// How many users `top` labels per period.
    public var topUsers: Int
    public var access: Access

    public init(userLabels: UserLabels = .none, topUsers: Int = 20, access: Access = .open) {
        self.userLabels = userLabels
        self.topUsers = topUsers
        self.access = access
    }

    public static let defaults = MetricsSettings()
}

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

    public var userLabels: UserLabels
    /// How many users `top` labels per period.
    public var topUsers: Int

    public init(userLabels: UserLabels = .none, topUsers: Int = 20) {
        self.userLabels = userLabels
        self.topUsers = topUsers
    }

    public static let defaults = MetricsSettings()
}

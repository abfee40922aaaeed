/// `gateway.yaml`'s `admin_api`: what admin keys may change through `/admin/api/…`, beyond
/// reading it.
public struct AdminAPISettings: Sendable, Hashable {
    /// Admin keys may create and revoke caller keys (`POST /admin/api/keys`,
    /// `DELETE /admin/api/keys/{id}`). Off by default: a key that reads spend need not be one
    /// that mints keys which spend. Admin keys themselves are made and revoked only with
    /// `tokenctl keys` on the gateway's host.
    public var manageKeys: Bool

    public init(manageKeys: Bool = false) {
        self.manageKeys = manageKeys
    }

    public static let defaults = AdminAPISettings()
}

/// `gateway.yaml`'s `cors`: which web pages' origins may call the gateway from a browser (the
/// official SDKs' browser modes, an internal tool's page), each with its own tokenctl key.
/// Without it no page of another origin can: browsers block what the gateway does not allow.
public struct CORSSettings: Sendable, Hashable {
    /// Origins exactly as browsers send them (`https://tools.example.com`, with a port when it is
    /// not the scheme's), or `*` for any. Keys travel in headers, never as cookies, so no
    /// origin is given credentials.
    public var allowedOrigins: [String]

    public init(allowedOrigins: [String] = []) {
        self.allowedOrigins = allowedOrigins
    }

    public static let none = CORSSettings()

    /// The `access-control-allow-origin` value for a request's `origin`, nil when not allowed.
    public func allowOrigin(for origin: String) -> String? {
        if allowedOrigins.isEmpty { return nil }
        if allowedOrigins.contains("*") { return "*" }
        return allowedOrigins.contains(origin) ? origin : nil
    }

    /// Why `text` is not an origin (`scheme://host[:port]`, lower case, no path), or nil.
    static func problem(with text: String) -> String? {
        if text == "*" { return nil }
        guard let separator = text.range(of: "://"),
              ["http", "https"].contains(text[..<separator.lowerBound]) else {
            return "'\(text)' is not an origin: expected http:// or https:// and a host, as a browser sends it (https://tools.example.com), or *"
        }
        let authority = text[separator.upperBound...]
        if authority.isEmpty || authority.contains(where: { "/?#@ ".contains($0) }) {
            return "'\(text)' is not an origin: an origin has no path, query, user or spaces (https://tools.example.com:8443)"
        }
        if text != text.lowercased() {
            return "'\(text)' is not an origin as browsers send it: write it in lower case"
        }
        return nil
    }
}

import Yams

/// `gateway.yaml`: process-wide settings. Optional; an absent or empty file means all defaults.
enum GatewayFile {
    static let name = "gateway.yaml"
    static let keys = ["max_body_bytes", "unpriced_models", "request_timeout_ms", "connect_timeout_ms"]
    /// Upper bound for any timeout: a day. Longer is surely a typo (seconds written as ms × 1000).
    static let timeoutRange = 1...86_400_000
    static let bodyRange = 1...1_073_741_824

    static func read(_ root: Node?, _ reader: inout PolicyFileReader) -> GatewaySettings {
        var settings = GatewaySettings.defaults
        guard let root, PolicyFileReader.tag(of: root) != .null,
              let fields = reader.mapping(root, "", allowed: keys) else { return settings }
        if let entry = fields["max_body_bytes"], let value = reader.integer(entry, in: bodyRange) {
            settings.maxBodyBytes = value
        }
        if let entry = fields["unpriced_models"], let text = reader.string(entry) {
            if let policy = UnpricedModelPolicy(rawValue: text) {
                settings.unpricedModels = policy
            } else {
                reader.problem(entry.value, entry.path, "unknown value '\(text)' (expected refuse or allow)")
            }
        }
        if let entry = fields["request_timeout_ms"], let value = reader.integer(entry, in: timeoutRange) {
            settings.requestTimeoutMs = value
        }
        if let entry = fields["connect_timeout_ms"], let value = reader.integer(entry, in: timeoutRange) {
            settings.connectTimeoutMs = value
        }
        return settings
    }
}

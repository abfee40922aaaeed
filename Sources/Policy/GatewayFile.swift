import Yams

/// `gateway.yaml`: process-wide settings. Optional; an absent or empty file means all defaults.
enum GatewayFile {
    static let name = "gateway.yaml"
    static let keys = ["max_body_bytes", "unpriced_models", "request_timeout_ms", "connect_timeout_ms", "metrics",
                       "header_timeout_ms", "body_timeout_ms", "max_connections", "cors", "admin_api",
                       "unknown_callers"]
    static let metricsKeys = ["user_labels", "top_users", "access"]
    static let corsKeys = ["allowed_origins"]
    static let adminAPIKeys = ["manage_keys"]
    static let unknownCallerKeys = ["rows_per_minute", "rows_per_minute_per_address"]
    /// 0 records none; a million a minute is past what a ledger should take from strangers.
    static let unknownCallerRowsRange = 0...1_000_000
    /// More per-user series than this is no longer a bounded label set.
    static let topUsersRange = 1...1_000
    /// Upper bound for any timeout: a day. Longer is surely a typo (seconds written as ms × 1000).
    static let timeoutRange = 1...86_400_000
    static let bodyRange = 1...1_073_741_824
    static let connectionsRange = 1...10_000_000

    static func read(_ root: Node?, _ reader: inout PolicyFileReader) -> GatewaySettings {
        var settings = GatewaySettings.defaults
        guard let root, PolicyFileReader.tag(of: root) != .null,
              let fields = reader.mapping(root, "", allowed: keys) else { return settings }
        if let entry = fields["max_body_bytes"], let value = reader.integer(entry, in: bodyRange) {
            settings.maxBodyBytes = value
        }
        if let entry = fields["unpriced_models"], let policy: UnpricedModelPolicy = reader.choice(entry) {
            settings.unpricedModels = policy
        }
        if let entry = fields["request_timeout_ms"], let value = reader.integer(entry, in: timeoutRange) {
            settings.requestTimeoutMs = value
        }
        if let entry = fields["connect_timeout_ms"], let value = reader.integer(entry, in: timeoutRange) {
            settings.connectTimeoutMs = value
        }
        if let entry = fields["metrics"] { settings.metrics = readMetrics(entry, &reader) }
        if let entry = fields["header_timeout_ms"], let value = reader.integer(entry, in: timeoutRange) {
            settings.headerTimeoutMs = value
        }
        if let entry = fields["body_timeout_ms"], let value = reader.integer(entry, in: timeoutRange) {
            settings.bodyTimeoutMs = value
        }
        if let entry = fields["max_connections"], let value = reader.integer(entry, in: connectionsRange) {
            settings.maxConnections = value
        }
        if let entry = fields["cors"] { settings.cors = readCORS(entry, &reader) }
        if let entry = fields["admin_api"], PolicyFileReader.tag(of: entry.value) != .null,
           let adminFields = reader.mapping(entry.value, entry.path, allowed: adminAPIKeys),
           let manage = adminFields["manage_keys"], let value = reader.boolean(manage) {
            settings.adminAPI.manageKeys = value
        }
        if let entry = fields["unknown_callers"] { settings.unknownCallers = readUnknownCallers(entry, &reader) }
        return settings
    }

    /// `cors: { allowed_origins: [https://tools.example.com, …] }`.
    private static func readCORS(_ entry: MappingFields.Entry, _ reader: inout PolicyFileReader) -> CORSSettings {
        var cors = CORSSettings.none
        guard PolicyFileReader.tag(of: entry.value) != .null,
              let fields = reader.mapping(entry.value, entry.path, allowed: corsKeys),
              let list = fields["allowed_origins"], let items = reader.sequence(list.value, list.path) else { return cors }
        for (index, item) in items.enumerated() {
            let field = "\(list.path)[\(index)]"
            guard let text = reader.string(item, field) else { continue }
            if let why = CORSSettings.problem(with: text) {
                reader.problem(item, field, why)
            } else {
                cors.allowedOrigins.append(text)
            }
        }
        return cors
    }

    /// `unknown_callers: { rows_per_minute: N, rows_per_minute_per_address: N }`.
    private static func readUnknownCallers(_ entry: MappingFields.Entry, _ reader: inout PolicyFileReader) -> UnknownCallerSettings {
        var settings = UnknownCallerSettings.defaults
        guard PolicyFileReader.tag(of: entry.value) != .null,
              let fields = reader.mapping(entry.value, entry.path, allowed: unknownCallerKeys) else { return settings }
        if let rows = fields["rows_per_minute"], let value = reader.integer(rows, in: unknownCallerRowsRange) {
            settings.rowsPerMinute = value
        }
        if let rows = fields["rows_per_minute_per_address"], let value = reader.integer(rows, in: unknownCallerRowsRange) {
            settings.rowsPerMinutePerAddress = value
        }
        return settings
    }

    /// `metrics: { user_labels: none|top, top_users: N, access: open|admin_key }`.
    private static func readMetrics(_ entry: MappingFields.Entry, _ reader: inout PolicyFileReader) -> MetricsSettings {
        var metrics = MetricsSettings.defaults
        guard PolicyFileReader.tag(of: entry.value) != .null,
              let fields = reader.mapping(entry.value, entry.path, allowed: metricsKeys) else { return metrics }
        if let labels = fields["user_labels"], let value: MetricsSettings.UserLabels = reader.choice(labels) {
            metrics.userLabels = value
        }
        if let access = fields["access"], let value: MetricsSettings.Access = reader.choice(access) {
            metrics.access = value
        }
        if let top = fields["top_users"], let value = reader.integer(top, in: topUsersRange) {
            metrics.topUsers = value
            if metrics.userLabels != .top {
                reader.warning(top.value, top.path, "has no effect unless user_labels is top")
            }
        }
        return metrics
    }
}

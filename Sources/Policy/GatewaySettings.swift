/// What to do with a call for a routed model that has no price on the call's day.
public enum UnpricedModelPolicy: String, Sendable, Hashable, CaseIterable {
    /// Refuse with 400 naming the model: nothing is used that cannot be costed.
    case refuse
    /// Forward it and record the tokens at zero cost.
    case allow
}

/// Process-wide limits from `gateway.yaml`; every field has a default, so the file is optional.
public struct GatewaySettings: Sendable, Hashable {
    /// Largest request body accepted from a client.
    public var maxBodyBytes: Int
    public var unpricedModels: UnpricedModelPolicy
    /// Default deadline of an upstream call; a provider's `timeout_ms` overrides it.
    public var requestTimeoutMs: Int
    /// Default upstream connect timeout; a provider's `connect_timeout_ms` overrides it.
    public var connectTimeoutMs: Int
    /// What `GET /metrics` may label by user.
    public var metrics: MetricsSettings
    /// A connection waiting for a request (new, or idle between keep-alive requests) must deliver
    /// a whole request head within this, else it is closed (slowloris; idle keep-alive).
    public var headerTimeoutMs: Int
    /// A request's body must arrive whole within this after its head, else 408.
    public var bodyTimeoutMs: Int
    /// Client connections held at once; past it a new connection is closed as it is accepted.
    /// nil: half the process's open-file limit less 64, so every client connection can have one
    /// to its provider beside it and the ledger, policy files and DNS keep descriptors.
    public var maxConnections: Int?
    /// Web pages of other origins allowed to call from a browser.
    public var cors: CORSSettings
    /// What admin keys may change through the admin API.
    public var adminAPI: AdminAPISettings
    /// How many refusals of requests without a known key are recorded.
    public var unknownCallers: UnknownCallerSettings

    public init(maxBodyBytes: Int = 10 * 1024 * 1024, unpricedModels: UnpricedModelPolicy = .refuse,
                requestTimeoutMs: Int = 600_000, connectTimeoutMs: Int = 10_000,
                metrics: MetricsSettings = .defaults, headerTimeoutMs: Int = 60_000, bodyTimeoutMs: Int = 60_000,
                maxConnections: Int? = nil, cors: CORSSettings = .none, adminAPI: AdminAPISettings = .defaults,
                unknownCallers: UnknownCallerSettings = .defaults) {
        self.unknownCallers = unknownCallers
        self.maxConnections = maxConnections
        self.adminAPI = adminAPI
        self.cors = cors
        self.headerTimeoutMs = headerTimeoutMs
        self.bodyTimeoutMs = bodyTimeoutMs
        self.maxBodyBytes = maxBodyBytes
        self.unpricedModels = unpricedModels
        self.requestTimeoutMs = requestTimeoutMs
        self.connectTimeoutMs = connectTimeoutMs
        self.metrics = metrics
    }

    public static let defaults = GatewaySettings()
}

import Metering

/// An upstream the proxy may call. Only configured providers are ever contacted (no open proxy).
///
/// `apiKey` is resolved from the environment at load time and never printed: `description`,
/// `debugDescription` and `dump` show `<redacted>` in its place (invariant 6).
public struct Provider: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable {
    public let name: String
    public let dialect: Dialect
    /// `http(s)://host[:port][/path]` without a trailing slash; `Endpoint.upstreamPath` is appended.
    public let baseURL: String
    /// Environment variable holding the key; nil for upstreams that need none (a local server).
    public let apiKeyEnv: String?
    /// The key itself, or nil when `apiKeyEnv` is absent or unset.
    public let apiKey: String?
    /// The header that carries `apiKey` upstream in the provider's dialect (`authorization: Bearer
    /// KEY`, `x-api-key: KEY`), made once here rather than for every call.
    public let keyHeader: (name: String, value: String)?
    /// Static headers sent upstream unless the client sent one of the same name (case-insensitive).
    /// Anthropic-dialect providers get `anthropic-version: 2023-06-01` unless configured otherwise.
    public let headers: [(String, String)]
    public let connectTimeoutMs: Int
    /// Deadline for the whole upstream call.
    public let timeoutMs: Int
    /// Longest wait for the provider's response head after the request is sent; nil: only `timeoutMs`.
    public let firstByteTimeoutMs: Int?
    /// Longest silence between two pieces of a response body (a stalled stream); nil: only `timeoutMs`.
    /// Time the client itself holds the relay paused (backpressure) does not count.
    public let idleTimeoutMs: Int?
    /// Concurrency limit and wait queue for calls to this provider.
    public let limits: ProviderLimits
    /// Extra attempts after a connect error or a 502/503/529, made only before anything reached
    /// the client (see `RetryBackoff`).
    public let retries: Int
    public static let defaultRetries = 2
    /// The authorities its TLS certificate must chain to (`ca_file`); nil: the system's store.
    public let certificateAuthorities: CertificateAuthorities?
    /// Whether HTTP/2 may be negotiated over `https://` (`http2: false`: HTTP/1.1 only, for a
    /// server or middlebox whose HTTP/2 misbehaves). `http://` is HTTP/1.1 either way.
    public let http2: Bool
    /// An OpenAI-compatible server rather than OpenAI (`openai_compatible`: Ollama, vLLM,
    /// llama.cpp, LM Studio): a plan's output cap goes in `max_tokens`, which they all read
    /// (some ignore `max_completion_tokens`), and legacy completions without one may be unbounded (Ollama, llama.cpp).
    public let openAICompatible: Bool
    /// Whether a chat or completions stream that did not ask for its usage is sent upstream with
    /// `stream_options.include_usage` (`ask_stream_usage`, default true), so the provider reports
    /// it. False for a server that refuses the field: its streams are then billed from their
    /// text (`usage_source = estimated`) unless it reports usage of its own accord.
    public let asksStreamUsage: Bool

    public init(name: String, dialect: Dialect, baseURL: String, apiKeyEnv: String? = nil,
                apiKey: String? = nil, headers: [(String, String)] = [],
                connectTimeoutMs: Int = GatewaySettings.defaults.connectTimeoutMs,
                timeoutMs: Int = GatewaySettings.defaults.requestTimeoutMs,
                firstByteTimeoutMs: Int? = nil, idleTimeoutMs: Int? = nil, limits: ProviderLimits = .unlimited,
                retries: Int = Provider.defaultRetries, certificateAuthorities: CertificateAuthorities? = nil,
                http2: Bool = true, openAICompatible: Bool = false, asksStreamUsage: Bool = true) {
        self.name = name
        self.dialect = dialect
        self.baseURL = baseURL
        self.apiKeyEnv = apiKeyEnv
        self.apiKey = apiKey
        keyHeader = apiKey.map { key in
            switch dialect {
            case .openai: ("authorization", "Bearer " + key)
            case .anthropic: ("x-api-key", key)
            }
        }
        self.headers = headers
        self.connectTimeoutMs = connectTimeoutMs
        self.timeoutMs = timeoutMs
        self.firstByteTimeoutMs = firstByteTimeoutMs
        self.idleTimeoutMs = idleTimeoutMs
        self.limits = limits
        self.retries = retries
        self.certificateAuthorities = certificateAuthorities
        self.http2 = http2
        self.openAICompatible = openAICompatible
        self.asksStreamUsage = asksStreamUsage
    }

    /// The longest one call may spend on this provider: the wait for a slot, then each attempt
    /// (the first, its `retries` and one more after a stale pooled connection) connecting and
    /// running to its deadline, with the longest backoff between them. Over-counts on purpose.
    var longestCallMicros: Int64 {
        let attempts = Int64(retries) + 2
        let attempt = Int64(connectTimeoutMs) + Int64(timeoutMs) + Int64(Self.retryBackoffCapMs)
        return (Int64(limits.queueTimeoutMs) + attempts * attempt) * 1_000
    }

    /// The longest wait between two attempts (the gateway's `RetryBackoff` cap).
    public static let retryBackoffCapMs = 2_000

    /// The default `anthropic-version` sent when neither the policy nor the client sets one.
    public static let defaultAnthropicVersion = "2023-06-01"

    /// The configured value of a static header (case-insensitive name).
    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    public static func == (a: Provider, b: Provider) -> Bool {
        a.name == b.name && a.dialect == b.dialect && a.baseURL == b.baseURL
            && a.apiKeyEnv == b.apiKeyEnv && a.apiKey == b.apiKey
            && a.headers.elementsEqual(b.headers, by: { $0.0 == $1.0 && $0.1 == $1.1 })
            && a.connectTimeoutMs == b.connectTimeoutMs && a.timeoutMs == b.timeoutMs
            && a.firstByteTimeoutMs == b.firstByteTimeoutMs && a.idleTimeoutMs == b.idleTimeoutMs
            && a.limits == b.limits && a.retries == b.retries && a.certificateAuthorities == b.certificateAuthorities
            && a.http2 == b.http2 && a.openAICompatible == b.openAICompatible && a.asksStreamUsage == b.asksStreamUsage
    }

    private var redactedKey: String { apiKey == nil ? "<none>" : "<redacted>" }

    // Header values are left out too: an admin may have put a credential in a custom header.
    public var description: String {
        "Provider(name: \(name), dialect: \(dialect.rawValue), baseURL: \(baseURL), "
            + "apiKeyEnv: \(apiKeyEnv ?? "<none>"), apiKey: \(redactedKey), "
            + "headers: [\(headers.map(\.0).joined(separator: ", "))], "
            + "connectTimeoutMs: \(connectTimeoutMs), timeoutMs: \(timeoutMs), "
            + "firstByteTimeoutMs: \(firstByteTimeoutMs.map(String.init) ?? "none"), "
            + "idleTimeoutMs: \(idleTimeoutMs.map(String.init) ?? "none"), "
            + "maxConcurrent: \(limits.maxConcurrent.map(String.init) ?? "none"), "
            + "caFile: \(certificateAuthorities?.path ?? "none"), http2: \(http2), "
            + "openAICompatible: \(openAICompatible), asksStreamUsage: \(asksStreamUsage))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: [
            "name": name, "dialect": dialect, "baseURL": baseURL,
            "apiKeyEnv": apiKeyEnv ?? "<none>", "apiKey": redactedKey,
            "headers": headers.map(\.0),
            "connectTimeoutMs": connectTimeoutMs, "timeoutMs": timeoutMs,
            "firstByteTimeoutMs": firstByteTimeoutMs as Any, "idleTimeoutMs": idleTimeoutMs as Any,
            "limits": limits, "retries": retries, "caFile": certificateAuthorities?.path ?? "none", "http2": http2,
            "openAICompatible": openAICompatible, "asksStreamUsage": asksStreamUsage,
        ], displayStyle: .struct)
    }
}

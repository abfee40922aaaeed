import Foundation
import Metering
import Yams

/// `providers.yaml`: the upstreams (`providers:`) and which models go to which (`models:`).
enum ProvidersFile {
    static let name = "providers.yaml"
    static let rootKeys = ["providers", "models"]
    static let providerKeys = ["dialect", "base_url", "api_key_env", "headers", "connect_timeout_ms", "timeout_ms",
                                       "first_byte_timeout_ms", "idle_timeout_ms",
                                       "max_concurrent", "max_queue", "queue_timeout_ms", "retries", "ca_file", "http2",
                                       "openai_compatible", "ask_stream_usage"]
    static let routeKeys = ["match", "provider", "fallbacks"]

    /// A route with where it was written, for messages from later cross-file checks.
    struct PlacedRoute {
        let route: ModelRoute
        let line: Int
        let field: String
    }

    struct Contents {
        var providers: [String: Provider] = [:]
        var routes: [PlacedRoute] = []
        /// Files the providers name (`ca_file`), resolved, whether or not they could be read, each
        /// with its `FileStamp` from just before it was read.
        var namedFiles: [String: String] = [:]
    }

    static func read(_ root: Node?, gateway: GatewaySettings, environment: [String: String],
                     directory: String, _ reader: inout PolicyFileReader) -> Contents {
        var contents = Contents()
        guard let root, PolicyFileReader.tag(of: root) != .null else {
            reader.problem(nil, "", "empty file (expected 'providers' and 'models')")
            return contents
        }
        guard let fields = reader.mapping(root, "", allowed: rootKeys) else { return contents }

        // Names declared, valid or not, so a broken provider does not also break every route to it.
        var declared: [String] = []
        if let entry = reader.require(fields, "providers"), let providers = reader.mapping(entry.value, entry.path) {
            for item in providers.entries {
                declared.append(item.key)
                if let provider = readProvider(item, gateway: gateway, environment: environment,
                                                 directory: directory, namedFiles: &contents.namedFiles, &reader) {
                    contents.providers[item.key] = provider
                }
            }
        }
        if let entry = reader.require(fields, "models"), let items = reader.sequence(entry.value, entry.path) {
            for (index, item) in items.enumerated() {
                let field = "\(entry.path)[\(index)]"
                guard let route = readRoute(item, field, declared: declared, &reader) else { continue }
                if let earlier = contents.routes.first(where: { GlobRelation.covers($0.route.pattern, route.pattern) }) {
                    let message = earlier.route.pattern == route.pattern
                        ? "duplicate of the route at line \(earlier.line)"
                        : "never matches: every model it matches is taken by the earlier route "
                            + "'\(earlier.route.pattern)' at line \(earlier.line) (put specific routes first)"
                    reader.problem(item, "\(field).match", message)
                    continue
                }
                contents.routes.append(PlacedRoute(route: route, line: PolicyFileReader.line(of: item), field: field))
            }
        }
        // A fallback must be routed, to a provider that speaks the same dialect (the request is
        // sent as it is, with only its model replaced).
        for placed in contents.routes {
            for (index, model) in placed.route.fallbacks.enumerated() {
                let path = "\(placed.field).fallbacks[\(index)]"
                guard let target = contents.routes.first(where: { $0.route.pattern.matches(model) }) else {
                    reader.problem(at: placed.line, path, "fallback '\(model)' is not routed by any entry of models")
                    continue
                }
                if let from = contents.providers[placed.route.provider]?.dialect,
                   let to = contents.providers[target.route.provider]?.dialect, from != to {
                    reader.problem(at: placed.line, path,
                                   "fallback '\(model)' is served by provider '\(target.route.provider)', which speaks \(to.rawValue); this route's provider '\(placed.route.provider)' speaks \(from.rawValue)")
                }
            }
        }
        return contents
    }

    private static func readProvider(_ item: MappingFields.Entry, gateway: GatewaySettings,
                                     environment: [String: String], directory: String,
                                     namedFiles: inout [String: String], _ reader: inout PolicyFileReader) -> Provider? {
        let name = item.key
        if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) {
            reader.problem(item.keyNode, item.path, "provider names may use only letters, digits, '-', '_' and '.'")
        }
        guard let fields = reader.mapping(item.value, item.path, allowed: providerKeys) else { return nil }

        var dialect: Dialect?
        if let entry = reader.require(fields, "dialect"), let text = reader.string(entry) {
            dialect = Dialect(rawValue: text)
            if dialect == nil {
                let expected = PolicyFileReader.oneOf(Dialect.allCases.map(\.rawValue))
                reader.problem(entry.value, entry.path, "unknown dialect '\(text)' (expected \(expected))")
            }
        }
        var baseURL: String?
        if let entry = reader.require(fields, "base_url"), let text = reader.string(entry) {
            switch normaliseBaseURL(text) {
            case .success(let url): baseURL = url
            case .failure(let why): reader.problem(entry.value, entry.path, "bad URL: \(why.reason)")  // not echoed: it may hold credentials
            }
        }
        if let baseURL, let dialect, let entry = fields["base_url"], let mistake = Self.pathMistake(baseURL, dialect) {
            reader.warning(entry.value, entry.path, mistake)
        }
        var apiKeyEnv: String?, apiKey: String?
        if let entry = fields["api_key_env"], let variable = reader.string(entry) {
            if isEnvironmentName(variable) {
                apiKeyEnv = variable
                apiKey = environment[variable].flatMap { $0.isEmpty ? nil : $0 }
                if apiKey == nil {
                    reader.warning(entry.value, entry.path,
                                   "environment variable \(variable) is not set; calls to '\(name)' are refused with 502 until it is set")
                }
            } else {
                reader.problem(entry.value, entry.path,
                               "'\(variable)' is not an environment variable name (letters, digits, '_'; not starting with a digit)")
            }
        }
        var headers: [(String, String)] = []
        if let entry = fields["headers"] { headers = readHeaders(entry, &reader) }
        var connectTimeoutMs = gateway.connectTimeoutMs, timeoutMs = gateway.requestTimeoutMs
        if let entry = fields["connect_timeout_ms"], let value = reader.integer(entry, in: GatewayFile.timeoutRange) {
            connectTimeoutMs = value
        }
        if let entry = fields["timeout_ms"], let value = reader.integer(entry, in: GatewayFile.timeoutRange) {
            timeoutMs = value
        }
        let firstByteTimeoutMs = fields["first_byte_timeout_ms"].flatMap { reader.integer($0, in: GatewayFile.timeoutRange) }
        let idleTimeoutMs = fields["idle_timeout_ms"].flatMap { reader.integer($0, in: GatewayFile.timeoutRange) }
        let maxConcurrent = fields["max_concurrent"].flatMap { reader.integer($0, in: 1...1_000_000) }
        let maxQueue = fields["max_queue"].flatMap { reader.integer($0, in: 0...1_000_000) }
        let queueTimeoutMs = fields["queue_timeout_ms"].flatMap { reader.integer($0, in: GatewayFile.timeoutRange) }
        for key in ["max_queue", "queue_timeout_ms"] where fields[key] != nil && fields["max_concurrent"] == nil {
            reader.problem(fields[key]!.value, fields[key]!.path, "has no effect without max_concurrent")
        }
        let limits = ProviderLimits(maxConcurrent: maxConcurrent, maxQueue: maxQueue,
                                    queueTimeoutMs: queueTimeoutMs ?? ProviderLimits.defaultQueueTimeoutMs)
        let retries = fields["retries"].flatMap { reader.integer($0, in: 0...5) } ?? Provider.defaultRetries
        let cleartext = baseURL.map { !$0.lowercased().hasPrefix("https://") } ?? false
        var authorities: CertificateAuthorities?
        if let entry = fields["ca_file"], let path = reader.string(entry) {
            let resolved = CertificateAuthorities.resolve(path, directory: directory)
            // Stamped before the read: a file changed after it is seen as a change, and read again.
            namedFiles[resolved] = FileStamp.of(resolved)
            do {
                let read = try CertificateAuthorities.read(resolved)
                warnAboutValidity(of: read, entry, &reader)
                authorities = read
            } catch {
                reader.problem(entry.value, entry.path, error.reason)
            }
            if cleartext { reader.problem(entry.value, entry.path, "applies to an https:// base_url only") }
        }
        let http2 = fields["http2"].flatMap { reader.boolean($0) } ?? true
        if let entry = fields["http2"], cleartext {
            reader.warning(entry.value, entry.path, "has no effect on an http:// base_url (HTTP/1.1 there)")
        }
        let compatible = fields["openai_compatible"].flatMap { reader.boolean($0) } ?? false
        if let entry = fields["openai_compatible"], dialect == .anthropic {
            reader.problem(entry.value, entry.path, "applies to the openai dialect only")
        }
        let asksStreamUsage = fields["ask_stream_usage"].flatMap { reader.boolean($0) } ?? true
        if let entry = fields["ask_stream_usage"], dialect == .anthropic {
            reader.problem(entry.value, entry.path, "applies to the openai dialect only (Anthropic streams always report usage)")
        }
        guard let dialect, let baseURL else { return nil }
        if dialect == .anthropic && !headers.contains(where: { $0.0.lowercased() == "anthropic-version" }) {
            headers.append(("anthropic-version", Provider.defaultAnthropicVersion))
        }
        return Provider(name: name, dialect: dialect, baseURL: baseURL, apiKeyEnv: apiKeyEnv, apiKey: apiKey,
                        headers: headers, connectTimeoutMs: connectTimeoutMs, timeoutMs: timeoutMs,
                        firstByteTimeoutMs: firstByteTimeoutMs, idleTimeoutMs: idleTimeoutMs, limits: limits,
                        retries: retries, certificateAuthorities: authorities, http2: http2,
                        openAICompatible: compatible, asksStreamUsage: asksStreamUsage)
    }

    /// A CA that has expired (or is not valid yet) loads, as OpenSSL would take the file, but
    /// no chain through it verifies: said now rather than at the first call.
    private static func warnAboutValidity(of authorities: CertificateAuthorities, _ entry: MappingFields.Entry,
                                          _ reader: inout PolicyFileReader) {
        let now = Date()
        let day = ISO8601DateFormatter()
        for (index, certificate) in authorities.certificates.enumerated() {
            let which = "'\(authorities.path)': certificate \(index + 1) (\(certificate.subject))"
            if certificate.notValidAfter < now {
                reader.warning(entry.value, entry.path,
                               "\(which) expired on \(day.string(from: certificate.notValidAfter)); no chain through it verifies")
            } else if certificate.notValidBefore > now {
                reader.warning(entry.value, entry.path,
                               "\(which) is not valid before \(day.string(from: certificate.notValidBefore))")
            }
        }
    }

    /// Credentials come only from `api_key_env`; framing headers belong to the proxy and libcurl.
    static let reservedHeaders: [String: String] = [
        "authorization": "credentials come from api_key_env",
        "x-api-key": "credentials come from api_key_env",
        "proxy-authorization": "credentials come from api_key_env",
        "host": "set from base_url",
        "content-length": "set by the proxy",
        "transfer-encoding": "set by the proxy",
        "connection": "set by the proxy",
        "keep-alive": "set by the proxy",
        "upgrade": "set by the proxy",
        "te": "set by the proxy",
        "trailer": "set by the proxy",
        // A compressed answer would pass unread: no usage, no cost.
        "accept-encoding": "the proxy reads answers uncompressed to meter them",
    ]

    private static func readHeaders(_ entry: MappingFields.Entry, _ reader: inout PolicyFileReader) -> [(String, String)] {
        guard let fields = reader.mapping(entry.value, entry.path) else { return [] }
        var headers: [(String, String)] = []
        var seen: [String: Int] = [:]
        for item in fields.entries {
            let lower = item.key.lowercased()
            let tokenChars = "!#$%&'*+-.^_`|~"
            if item.key.isEmpty || !item.key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || tokenChars.contains($0)) }) {
                reader.problem(item.keyNode, item.path, "'\(item.key)' is not a valid header name")
                continue
            }
            if let why = reservedHeaders[lower] {
                reader.problem(item.keyNode, item.path, "header '\(item.key)' may not be configured (\(why))")
                continue
            }
            if let line = seen[lower] {
                reader.problem(item.keyNode, item.path, "duplicate of the header at line \(line) (names are case-insensitive)")
                continue
            }
            seen[lower] = PolicyFileReader.line(of: item.keyNode)
            guard let value = reader.string(item) else { continue }
            // CR/LF would let a value smuggle extra headers into the upstream request.
            if value.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F }) {
                reader.problem(item.value, item.path, "header values may not contain control characters or line breaks")
                continue
            }
            headers.append((item.key, value))
        }
        return headers
    }

    private static func readRoute(_ node: Node, _ field: String, declared: [String],
                                  _ reader: inout PolicyFileReader) -> ModelRoute? {
        guard let fields = reader.mapping(node, field, allowed: routeKeys) else { return nil }
        var pattern: ModelPattern?
        if let entry = reader.require(fields, "match"), let text = reader.string(entry) {
            if let why = modelPatternProblem(text) {
                reader.problem(entry.value, entry.path, why)
            } else {
                pattern = ModelPattern(text)
            }
        }
        var provider: String?
        if let entry = reader.require(fields, "provider"), let name = reader.string(entry) {
            if declared.contains(name) {
                provider = name
            } else {
                let known = declared.isEmpty ? "none is declared" : "expected \(PolicyFileReader.oneOf(declared.sorted()))"
                reader.problem(entry.value, entry.path, "unknown provider '\(name)' (\(known))")
            }
        }
        var fallbacks: [String] = []
        if let entry = fields["fallbacks"], let items = reader.sequence(entry.value, entry.path) {
            for (index, item) in items.enumerated() {
                let path = "\(entry.path)[\(index)]"
                guard case .scalar(let scalar) = item, PolicyFileReader.tag(of: item) == .str else {
                    reader.problem(item, path, "expected a model name")
                    continue
                }
                if let why = modelPatternProblem(scalar.string) {
                    reader.problem(item, path, why)
                } else if scalar.string.contains("*") {
                    reader.problem(item, path, "a fallback is one model, not a pattern")
                } else {
                    fallbacks.append(scalar.string)
                }
            }
        }
        guard let pattern, let provider else { return nil }
        return ModelRoute(pattern: pattern, provider: provider, fallbacks: fallbacks)
    }

    /// Why a model name or glob is unusable, or nil if it is fine. Shared with `prices.yaml`.
    static func modelPatternProblem(_ text: String) -> String? {
        if text.isEmpty { return "empty model name" }
        if text.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 }) {
            return "model name '\(text)' contains whitespace or control characters"
        }
        return nil
    }

    static func isEnvironmentName(_ text: String) -> Bool {
        guard let first = text.first, first.isASCII, first.isLetter || first == "_" else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }

    struct URLProblem: Error { let reason: String }

    /// A base URL whose path does not fit its dialect's paths (`Endpoint.upstreamPath`): the
    /// usual slip in a provider's set-up, which would otherwise show only as the provider's 404s.
    static func pathMistake(_ baseURL: String, _ dialect: Dialect) -> String? {
        let path = URLComponents(string: baseURL)?.path ?? ""
        switch dialect {
        case .anthropic where path.hasSuffix("/v1"):
            return "ends in /v1, and the gateway adds /v1/messages to it (calls would go to …/v1/v1/messages): an Anthropic base URL ends before /v1, as https://api.anthropic.com does"
        case .openai where path.isEmpty:
            return "has no path, and the gateway adds /chat/completions (not /v1/chat/completions) to it: an OpenAI base URL usually ends in /v1, as https://api.openai.com/v1 does (unless this server serves at its root)"
        default:
            return nil
        }
    }

    /// `http(s)://host[:port][/path]` with trailing slashes removed, or why not.
    static func normaliseBaseURL(_ text: String) -> Result<String, URLProblem> {
        var url = text
        while url.hasSuffix("/") { url.removeLast() }
        if url.contains(where: { $0.isWhitespace }) { return .failure(.init(reason: "contains whitespace")) }
        guard let parts = URLComponents(string: url), let scheme = parts.scheme?.lowercased() else {
            return .failure(.init(reason: "not a URL"))
        }
        guard scheme == "http" || scheme == "https" else {
            return .failure(.init(reason: "scheme must be http or https"))
        }
        guard let host = parts.host, !host.isEmpty else { return .failure(.init(reason: "no host")) }
        guard parts.user == nil, parts.password == nil else {
            return .failure(.init(reason: "credentials in the URL would be logged; use api_key_env"))
        }
        guard parts.query == nil, parts.fragment == nil else {
            return .failure(.init(reason: "a base URL takes no query or fragment"))
        }
        return .success(url)
    }
}

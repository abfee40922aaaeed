import NIOCore
import NIOHTTP1
import NIOPosix

/// A fast fake LLM provider speaking the OpenAI and Anthropic dialects, for tests, benchmarks
/// and `tokenctl demo` (never for production paths), over cleartext HTTP/1.1 or, with the
/// `FakeTLS` transport, HTTPS negotiating HTTP/2 or HTTP/1.1.
///
/// Routes: OpenAI (`baseURL + "/v1"`) `POST /v1/chat/completions`, `/v1/completions`,
/// `/v1/embeddings`, `/v1/responses`, `GET /v1/models` (and `/v1/models/{id}`); Anthropic
/// (`baseURL`) `POST /v1/messages`, `/v1/messages/count_tokens`, `GET /v1/models` when the
/// request has an `anthropic-version` header; `GET /health`. Usage follows `FakeUsage`;
/// per-request knobs are the `FakeHeader` headers. The model served is the model requested,
/// echoed as is (no dated variant), so price lookups see what the client asked for.
public final class FakeLLMServer: Sendable {
    public let configuration: FakeLLMConfiguration
    public let port: Int
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let log: ExchangeLog
    private let held: HeldAnswers

    /// Binds and starts serving; returns once the port is open.
    public static func start(_ configuration: FakeLLMConfiguration = FakeLLMConfiguration()) throws -> FakeLLMServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        let log = ExchangeLog(capacity: configuration.maxRecordedExchanges), held = HeldAnswers()
        do {
            let channel = try bootstrap(group: group, configuration: configuration, log: log, held: held)
                .bind(host: configuration.host, port: configuration.port).wait()
            return FakeLLMServer(configuration: configuration, group: group, channel: channel, log: log, held: held)
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
    }

    /// The async form of `start`, for callers that must not block a concurrency thread.
    public static func started(_ configuration: FakeLLMConfiguration = FakeLLMConfiguration())
        async throws -> FakeLLMServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        let log = ExchangeLog(capacity: configuration.maxRecordedExchanges), held = HeldAnswers()
        do {
            let channel = try await bootstrap(group: group, configuration: configuration, log: log, held: held)
                .bind(host: configuration.host, port: configuration.port).get()
            return FakeLLMServer(configuration: configuration, group: group, channel: channel, log: log, held: held)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private init(configuration: FakeLLMConfiguration, group: MultiThreadedEventLoopGroup,
                 channel: any Channel, log: ExchangeLog, held: HeldAnswers) {
        self.configuration = configuration
        self.group = group
        self.channel = channel
        self.log = log
        self.held = held
        self.port = channel.localAddress?.port ?? configuration.port
    }

    private static func bootstrap(group: MultiThreadedEventLoopGroup, configuration: FakeLLMConfiguration,
                                  log: ExchangeLog, held: HeldAnswers) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                log.countConnection()
                return configuration.transport.configure(channel) { channel in
                    try channel.pipeline.syncOperations.addHandler(FakeHTTPHandler(configuration: configuration, log: log, held: held))
                }
            }
    }

    /// `http://HOST:PORT` (`https://` over TLS): the Anthropic base URL; OpenAI clients append
    /// `/v1`.
    public var baseURL: String {
        let host = configuration.host.contains(":") ? "[\(configuration.host)]" : configuration.host
        return "\(configuration.transport.scheme)://\(host):\(port)"
    }

    /// `baseURL + "/v1"`, what the OpenAI SDKs take as base URL.
    public var openAIBaseURL: String { baseURL + "/v1" }

    /// Connections accepted so far (with HTTP/2, one carries many requests).
    public var connectionCount: Int { log.connectionCount }

    /// Requests received so far (every route, failures included).
    public var requestCount: Int { log.requestCount }

    /// What the request with this `x-request-id` received and exactly which bytes it was sent
    /// (requests without the header are keyed `fake-<n>`). Nil once evicted or when recording
    /// is off.
    public func exchange(requestID: String) -> FakeExchange? {
        log.exchange(requestID: requestID)
    }

    /// Lets the answers held under `name` (`x-fake-hold`) go, and those that ask for it later.
    public func release(_ name: String) { held.release(name) }

    /// How many answers wait under `name` now: a test knows its call reached the provider.
    public func holding(_ name: String) -> Int { held.waiting(name) }

    /// Every exchange still kept, oldest first.
    public func recordedExchanges() -> [FakeExchange] { log.all() }

    public func clearRecordedExchanges() { log.removeAll() }

    /// Stops listening, closes open connections and joins the event-loop threads. Blocking:
    /// from async code use `shutdownGracefully()`.
    public func shutdown() throws {
        try? channel.close().wait()
        try group.syncShutdownGracefully()
    }

    public func shutdownGracefully() async throws {
        try? await channel.close().get()
        try await group.shutdownGracefully()
    }
}

import NIOCore

/// How a FakeLLM server listens and answers by default. Each request can override the pacing,
/// length, usage and failure mode with `x-fake-*` headers (see `FakeHeader`).
public struct FakeLLMConfiguration: Sendable {
    public var host: String
    /// 0 picks an ephemeral port; read it back from `FakeLLMServer.port`.
    public var port: Int
    /// Event-loop threads.
    public var threads: Int
    /// Wait before the response head (and, streaming, the opening events) goes out.
    public var firstByteDelay: Duration
    /// Content deltas per answer, one output token each (see `FakeUsage`).
    public var chunkCount: Int
    /// Wait before each content delta; a non-streaming answer waits for all of them.
    public var chunkGap: Duration
    /// When set, OpenAI routes need `Authorization: Bearer <key>` and Anthropic routes
    /// `x-api-key: <key>` (or `Authorization: Bearer <key>`, as recent anthropic SDKs send);
    /// anything else gets the provider's 401.
    public var requiredAPIKey: String?
    /// Keep each exchange for `FakeLLMServer.exchange(requestID:)`; benchmarks turn it off.
    public var recordExchanges: Bool
    /// The newest exchanges kept; older ones are dropped.
    public var maxRecordedExchanges: Int
    /// Events due at the same instant (no gap between them) share one flush instead of one
    /// each. Each event is still its own write and HTTP chunk, but several may leave in one
    /// TCP send. Cuts the fake's CPU per stream by more than half, for throughput benchmarks;
    /// off by default so that every event is its own send.
    public var coalesceEvents: Bool
    /// How connections are set up before HTTP: cleartext HTTP/1.1 by default; `FakeTLS`
    /// (module FakeLLMTLS) for HTTPS with HTTP/2.
    public var transport: any FakeTransport

    public init(host: String = "127.0.0.1", port: Int = 0, threads: Int = 1,
                firstByteDelay: Duration = .zero, chunkCount: Int = 8, chunkGap: Duration = .zero,
                requiredAPIKey: String? = nil, recordExchanges: Bool = true,
                maxRecordedExchanges: Int = 10_000, coalesceEvents: Bool = false,
                transport: any FakeTransport = CleartextTransport()) {
        self.host = host
        self.port = port
        self.threads = threads
        self.firstByteDelay = firstByteDelay
        self.chunkCount = chunkCount
        self.chunkGap = chunkGap
        self.requiredAPIKey = requiredAPIKey
        self.recordExchanges = recordExchanges
        self.maxRecordedExchanges = maxRecordedExchanges
        self.coalesceEvents = coalesceEvents
        self.transport = transport
    }
}

extension Duration {
    /// NIO's scheduling unit (nanosecond precision is plenty for a fake).
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000)
    }
}

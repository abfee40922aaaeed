import NIOCore
import NIOHTTP1

/// How FakeLLM sets up an accepted connection before HTTP. Cleartext HTTP/1.1 unless
/// `FakeLLMConfiguration.transport` says otherwise: `FakeTLS` (module FakeLLMTLS) serves HTTPS
/// with HTTP/2, kept out of this module so that `tokenctl demo`, which links it, does not carry
/// TLS and HTTP/2 server code.
public protocol FakeTransport: Sendable {
    /// `http` or `https`, for `FakeLLMServer.baseURL`.
    var scheme: String { get }

    /// Sets up `channel`, then has `serve` answer each request: on the connection itself
    /// (HTTP/1.1) or on each HTTP/2 stream's channel, given HTTP/1-style parts either way.
    func configure(_ channel: any Channel, serve: @escaping @Sendable (any Channel) throws -> Void)
        -> EventLoopFuture<Void>
}

/// Sent down an HTTP/2 stream's pipeline (`triggerUserOutboundEvent`): the transport ends the
/// connection under it with a GOAWAY refusing that stream, then closes it.
public struct FakeConnectionDrain: Sendable {
    public init() {}
}

/// Sent down an HTTP/2 stream's pipeline (`triggerUserOutboundEvent`): the transport resets
/// that stream (RST_STREAM) with this error code.
public enum FakeStreamReset: Sendable {
    case http11Required
}

/// Cleartext HTTP/1.1, pipelined requests answered one at a time.
public struct CleartextTransport: FakeTransport {
    public var scheme: String { "http" }

    public init() {}

    public func configure(_ channel: any Channel, serve: @escaping @Sendable (any Channel) throws -> Void)
        -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try Self.serveHTTP1(on: channel, serve)
        }
    }

    /// The HTTP/1.1 codec, then `serve`: also what an HTTPS connection gets when ALPN settles
    /// on HTTP/1.1.
    public static func serveHTTP1(on channel: any Channel, _ serve: (any Channel) throws -> Void) throws {
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: true, withErrorHandling: true)
        try serve(channel)
    }
}

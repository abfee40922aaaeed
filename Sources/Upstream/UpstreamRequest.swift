import NIOCore

/// One HTTP call to an upstream provider.
public struct UpstreamRequest: Sendable {
    public var url: String
    public var method: String
    /// Sent as given (names as written). `Content-Length`, `Transfer-Encoding`
    /// and `Expect` are dropped: the body is sent from memory and its length is
    /// known. Headers whose name or value contains CR or LF are dropped
    /// (no header injection). Set `Content-Type` yourself: curl's
    /// form-urlencoded default is suppressed.
    public var headers: [(String, String)]
    public var body: ByteBuffer
    /// Limit for TCP (+TLS) connect; 0 means curl's default (300 s).
    public var connectTimeoutMs: Int
    /// Deadline for the whole transfer, including time spent waiting for an HTTP/2 stream and
    /// paused; 0 means none. The driver keeps it (`CurlDriver.expireOverdue`).
    public var totalTimeoutMs: Int
    /// PEM certificates of the only authorities to trust for this upstream's TLS, in place of
    /// the system's store (a company CA in front of a self-hosted model); nil: the system's.
    public var certificateAuthoritiesPEM: [UInt8]?
    /// False: HTTP/1.1 even where TLS could negotiate HTTP/2 (see `UpstreamConfiguration.http2`).
    public var http2: Bool

    public init(
        url: String,
        method: String = "POST",
        headers: [(String, String)] = [],
        body: ByteBuffer = ByteBuffer(),
        connectTimeoutMs: Int = 10_000,
        totalTimeoutMs: Int = 600_000,
        certificateAuthoritiesPEM: [UInt8]? = nil,
        http2: Bool = true
    ) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.connectTimeoutMs = connectTimeoutMs
        self.totalTimeoutMs = totalTimeoutMs
        self.certificateAuthoritiesPEM = certificateAuthoritiesPEM
        self.http2 = http2
    }
}

/// Settings of the shared curl multi handle.
public struct UpstreamConfiguration: Sendable {
    /// `CURLMOPT_MAX_HOST_CONNECTIONS`; 0 = unlimited. Transfers beyond it
    /// wait inside curl for a free connection (HTTP/2 streams share one).
    public var maxHostConnections: Int
    /// `CURLMOPT_MAX_TOTAL_CONNECTIONS`; 0 = unlimited.
    public var maxTotalConnections: Int
    /// `CURLMOPT_MAXCONNECTS`: idle connections kept for reuse; 0 = curl's default, which is
    /// 4 × the transfers running at the moment: it shrinks whenever load dips and closes warm
    /// connections the next burst must reopen (7.6 % of calls reconnected at 64 clients).
    public var connectionCacheSize: Int
    /// Easy handles kept for reuse after a transfer (`curl_easy_reset`).
    public var easyHandlePoolSize: Int
    /// A kept handle not taken again for this long is freed, down to a few (it keeps buffers
    /// that hold memory a burst used: `CurlEasyHandlePool`).
    public var easyHandleIdleRelease: Duration
    /// `CURLMOPT_MAX_CONCURRENT_STREAMS`: HTTP/2 streams on one connection at most (fewer if the
    /// provider says so); libcurl's default.
    public var streamsPerConnection: Int
    /// Negotiate HTTP/2 over TLS (ALPN) and multiplex streams on one connection.
    public var http2: Bool

    public init(
        maxHostConnections: Int = 0,
        maxTotalConnections: Int = 0,
        connectionCacheSize: Int = 256,
        easyHandlePoolSize: Int = 64,
        easyHandleIdleRelease: Duration = .seconds(1),
        streamsPerConnection: Int = 100,
        http2: Bool = true
    ) {
        self.streamsPerConnection = streamsPerConnection
        self.maxHostConnections = maxHostConnections
        self.maxTotalConnections = maxTotalConnections
        self.connectionCacheSize = connectionCacheSize
        self.easyHandlePoolSize = easyHandlePoolSize
        self.easyHandleIdleRelease = easyHandleIdleRelease
        self.http2 = http2
    }
}

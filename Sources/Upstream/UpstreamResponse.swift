import NIOCore

/// Status line and headers of the final (non-1xx) response.
public struct UpstreamHead: Sendable {
    public var status: Int
    public var reason: String
    public var httpVersion: UpstreamHTTPVersion
    /// In arrival order, names as the server sent them.
    public var headers: [(name: String, value: String)]

    public init(
        status: Int, reason: String = "", httpVersion: UpstreamHTTPVersion = .http1_1,
        headers: [(name: String, value: String)] = []
    ) {
        self.status = status
        self.reason = reason
        self.httpVersion = httpVersion
        self.headers = headers
    }

    /// First value of a header, name compared case-insensitively.
    public func first(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveEquals(name) }?.value
    }
}

public struct UpstreamHTTPVersion: Sendable, Hashable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }
    public static let http1_0 = UpstreamHTTPVersion(major: 1, minor: 0)
    public static let http1_1 = UpstreamHTTPVersion(major: 1, minor: 1)
    public static let http2 = UpstreamHTTPVersion(major: 2, minor: 0)
    public var description: String { minor == 0 && major >= 2 ? "HTTP/\(major)" : "HTTP/\(major).\(minor)" }
}

/// Measured by curl for one transfer.
public struct UpstreamTiming: Sendable {
    /// Start → TCP connect done (`CURLINFO_CONNECT_TIME_T`); 0 on a reused connection.
    public var connectMicros: Int64
    /// Start → first response byte (`CURLINFO_STARTTRANSFER_TIME_T`).
    public var firstByteMicros: Int64
    /// Start → end (`CURLINFO_TOTAL_TIME_T`).
    public var totalMicros: Int64
    /// Body bytes handed to the handler.
    public var bytesReceived: Int
    /// The transfer ran on a connection kept from an earlier one.
    public var reusedConnection: Bool

    public init(connectMicros: Int64 = 0, firstByteMicros: Int64 = 0, totalMicros: Int64 = 0,
                bytesReceived: Int = 0, reusedConnection: Bool = false) {
        self.connectMicros = connectMicros
        self.firstByteMicros = firstByteMicros
        self.totalMicros = totalMicros
        self.bytesReceived = bytesReceived
        self.reusedConnection = reusedConnection
    }
}

/// Why a transfer did not complete. An HTTP error status is not an error here:
/// it arrives as a head like any other.
public enum UpstreamError: Error, Sendable, Equatable {
    /// Name resolution, TCP connect or TLS handshake failed.
    case connect(String)
    /// The server's TLS certificate did not verify against the trusted CAs (or they could not
    /// be read): a configuration problem, which trying again does not mend.
    case certificate(String)
    /// The connect timeout or the total deadline passed; `requestSent`: after the request began
    /// to go out (curl's pre-transfer point), so the provider may have it.
    case timeout(String, requestSent: Bool)
    /// `UpstreamTransfer.cancel()` or `UpstreamClient.shutdown()`.
    case cancelled
    /// The provider never read the request: a connection kept from an earlier transfer ended
    /// before any byte of the answer, either right after the request went out (the server
    /// closed it as an idle one) or with a GOAWAY that refused the stream (`CurlFailure`). One
    /// more attempt is safe (curl closed that connection, so it goes on another).
    case staleConnection(String)
    /// Anything else curl reported (e.g. connection reset, malformed response).
    case transport(code: Int, message: String)
}

extension UpstreamError {
    /// Whether the provider may have read the request, and may bill it: not when no connection
    /// was made, its certificate failed, a kept connection ended before it was read, or the
    /// deadline passed before the request went out. A cancellation says nothing of it: ask the
    /// transfer (`UpstreamTransfer.requestWentOut`).
    public var providerMayHaveRead: Bool {
        switch self {
        case .connect, .certificate, .staleConnection: return false
        case .timeout(_, let requestSent): return requestSent
        case .cancelled, .transport: return true
        }
    }
}

/// Receives one transfer's response. Every call happens on the event loop
/// given to `UpstreamClient.start`, in this order: at most one `upstreamHead`,
/// then `upstreamBody` calls (only after the head), then exactly one
/// `upstreamEnd`, always last.
public protocol UpstreamResponseHandler: AnyObject {
    func upstreamHead(_ head: UpstreamHead)
    /// `endFollows`: the end arrived with this chunk and `upstreamEnd` comes next, so a relay
    /// can write both in one flush (one system call where there would be two).
    func upstreamBody(_ chunk: ByteBuffer, endFollows: Bool)
    func upstreamEnd(_ result: Result<UpstreamTiming, UpstreamError>)
}

extension String {
    /// ASCII letters compared without case. Over the strings' bytes in place: header names are
    /// compared several times per call (a zip of two UTF-8 views cost more than the compare, and
    /// `withUTF8` on copies a retain and a release of each string).
    func caseInsensitiveEquals(_ other: String) -> Bool {
        guard utf8.count == other.utf8.count else { return false }
        func same(_ x: UInt8, _ y: UInt8) -> Bool {
            x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z"))
        }
        let inPlace = utf8.withContiguousStorageIfAvailable { a in
            other.utf8.withContiguousStorageIfAvailable { b in zip(a, b).allSatisfy(same) }
        }
        // Native strings, small or not, have their bytes contiguous; a bridged one would not.
        return (inPlace ?? nil) ?? zip(utf8, other.utf8).allSatisfy(same)
    }
}

extension String.UTF8View {
    /// `contains(where:)` over the bytes in place when the string has them contiguous (native strings).
    func containsByte(where predicate: (UInt8) -> Bool) -> Bool {
        withContiguousStorageIfAvailable { $0.contains(where: predicate) } ?? contains(where: predicate)
    }
}

import CCurl
import Testing
@testable import Upstream

/// How curl's result codes become `UpstreamError`s, which decide what the gateway tries again.
/// The messages are libcurl 7.88's (and 8.x's where they differ), as seen from FakeLLM.
@Suite("curl error mapping")
struct CurlErrorMappingTests {
    static let connectionEnd = "HTTP/2 stream 3 was not closed cleanly before end of the underlying stream"

    static func map(_ code: CURLcode, _ message: String, reused: Bool = true, started: Bool = false) -> UpstreamError {
        CurlRuntime.error(code: code, message: message, reusedConnection: reused, answerStarted: started)
    }

    static func isStale(_ error: UpstreamError) -> Bool {
        if case .staleConnection = error { return true }
        return false
    }

    @Test("a pooled connection that ends before any answer byte is stale")
    func connectionEndsAreStale() {
        #expect(Self.map(CURLE_PARTIAL_FILE, Self.connectionEnd) == .staleConnection(Self.connectionEnd))
        #expect(Self.isStale(Self.map(CURLE_HTTP2_STREAM,
                                      "HTTP/2 stream 5 was not closed cleanly before end of the underlying connection")))
        #expect(Self.isStale(Self.map(CURLE_RECV_ERROR, "Recv failure: Connection reset by peer")))
        #expect(Self.isStale(Self.map(CURLE_SEND_ERROR, "Send failure: Broken pipe")))
        #expect(Self.isStale(Self.map(CURLE_GOT_NOTHING, "Empty reply from server")))
        // A GOAWAY that refuses the stream.
        #expect(Self.isStale(Self.map(CURLE_HTTP2, "Error in the HTTP2 framing layer")))
    }

    @Test("the same end on a connection of its own, or after part of an answer, is a transport error")
    func freshOrStartedIsNotStale() {
        #expect(Self.map(CURLE_PARTIAL_FILE, Self.connectionEnd, reused: false)
                == .transport(code: Int(CURLE_PARTIAL_FILE.rawValue), message: Self.connectionEnd))
        #expect(!Self.isStale(Self.map(CURLE_PARTIAL_FILE, Self.connectionEnd, started: true)))
        #expect(!Self.isStale(Self.map(CURLE_GOT_NOTHING, "Empty reply from server", reused: false)))
    }

    @Test("a stream the server reset is not stale: the server may have read it")
    func resetStreamsAreNotStale() {
        #expect(!Self.isStale(Self.map(CURLE_HTTP2_STREAM, "HTTP/2 stream 3 was not closed cleanly: CANCEL (err 8)")))
        #expect(!Self.isStale(Self.map(CURLE_RECV_ERROR, "HTTP/2 stream 3 was reset")))
        #expect(!Self.isStale(Self.map(CURLE_PARTIAL_FILE, "transfer closed with 10 bytes remaining to read")))
    }

    @Test("other codes keep their kinds, reused connection or not")
    func otherKinds() {
        #expect(Self.map(CURLE_OPERATION_TIMEDOUT, "Operation timed out") == .timeout("Operation timed out"))
        #expect(Self.map(CURLE_COULDNT_CONNECT, "Failed to connect") == .connect("Failed to connect"))
        #expect(Self.map(CURLE_SSL_CONNECT_ERROR, "handshake") == .connect("handshake"))
        #expect(Self.map(CURLE_PEER_FAILED_VERIFICATION, "SSL certificate problem") == .certificate("SSL certificate problem"))
        #expect(Self.map(CURLE_SSL_CACERT_BADFILE, "error importing CA certificate blob")
                == .certificate("error importing CA certificate blob"))
        #expect(Self.map(CURLE_WEIRD_SERVER_REPLY, "Unsupported HTTP version")
                == .transport(code: Int(CURLE_WEIRD_SERVER_REPLY.rawValue), message: "Unsupported HTTP version"))
    }
}

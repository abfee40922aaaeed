import CCurl
import Testing
@testable import Upstream

/// How curl's result codes become `UpstreamError`s, which decide what the gateway sends again.
/// The messages are libcurl 7.88's (and later versions' where they differ), as seen from FakeLLM.
@Suite("curl error mapping")
struct CurlErrorMappingTests {
    static let connectionEnd = "HTTP/2 stream 3 was not closed cleanly before end of the underlying stream"

    /// A failure on a reused connection, 10 ms after the request went out, with no answer byte.
    static func map(_ code: CURLcode, _ detail: String?, reused: Bool = true, started: Bool = false,
                    waitedMicros: Int64 = 10_000) -> UpstreamError {
        CurlRuntime.error(CurlFailure(code: code, detail: detail, reusedConnection: reused, answerStarted: started,
                                      waitedMicros: waitedMicros))
    }

    static func isStale(_ error: UpstreamError) -> Bool {
        if case .staleConnection = error { return true }
        return false
    }

    @Test("a pooled connection that ends right after the request went out, before any answer byte, is stale")
    func connectionEndsAreStale() {
        #expect(Self.map(CURLE_PARTIAL_FILE, Self.connectionEnd) == .staleConnection(Self.connectionEnd))
        let later = "HTTP/2 stream 5 was not closed cleanly before end of the underlying connection"
        for code in [CURLE_HTTP2_STREAM, CURLE_RECV_ERROR, CURLE_SEND_ERROR] {
            #expect(Self.isStale(Self.map(code, later)), "\(code)")
        }
        #expect(Self.isStale(Self.map(CURLE_RECV_ERROR, "Recv failure: Connection reset by peer")))
        #expect(Self.isStale(Self.map(CURLE_RECV_ERROR, "OpenSSL SSL_read: error:0A000126:SSL routines::unexpected eof while reading, errno 0")))
        #expect(Self.isStale(Self.map(CURLE_SEND_ERROR, "Send failure: Broken pipe")))
        #expect(Self.isStale(Self.map(CURLE_GOT_NOTHING, "Empty reply from server")))
        #expect(Self.isStale(Self.map(CURLE_PARTIAL_FILE, Self.connectionEnd, waitedMicros: CurlFailure.staleWindowMicros)))
    }

    @Test("a GOAWAY that refuses the stream is stale however long the call waited")
    func refusedStreamsAreStale() {
        #expect(Self.map(CURLE_HTTP2, nil, waitedMicros: 60_000_000)
                == .staleConnection("Error in the HTTP2 framing layer"))
        #expect(!Self.isStale(Self.map(CURLE_HTTP2, "nghttp2_session_send() failed")))
    }

    @Test("a connection that ends after the provider had the call for a while is not stale: it may have worked on it")
    func lateEndsAreNotStale() {
        let late = CurlFailure.staleWindowMicros + 1
        #expect(Self.map(CURLE_PARTIAL_FILE, Self.connectionEnd, waitedMicros: late)
                == .transport(code: Int(CURLE_PARTIAL_FILE.rawValue), message: Self.connectionEnd))
        #expect(!Self.isStale(Self.map(CURLE_GOT_NOTHING, "Empty reply from server", waitedMicros: 30_000_000)))
    }

    @Test("the same end on a connection of its own, or after part of an answer, is a transport error")
    func freshOrStartedIsNotStale() {
        #expect(Self.map(CURLE_PARTIAL_FILE, Self.connectionEnd, reused: false)
                == .transport(code: Int(CURLE_PARTIAL_FILE.rawValue), message: Self.connectionEnd))
        #expect(!Self.isStale(Self.map(CURLE_PARTIAL_FILE, Self.connectionEnd, started: true)))
        #expect(!Self.isStale(Self.map(CURLE_GOT_NOTHING, "Empty reply from server", reused: false)))
        #expect(!Self.isStale(Self.map(CURLE_HTTP2, nil, started: true)))
    }

    @Test("libcurl's own second send, stopped past the window, reads as the provider's failure, whatever curl's code")
    func refusedResendIsTheProvidersFailure() {
        let failure = CurlFailure(code: CURLE_ABORTED_BY_CALLBACK, detail: "operation aborted by pre-request callback",
                                  reusedConnection: true,
                                  resendRefusedAfterMicros: 1_512_345)
        #expect(CurlRuntime.error(failure) == .transport(
            code: Int(CURLE_ABORTED_BY_CALLBACK.rawValue),
            message: "the connection closed without an answer 1.5 s after the call went out; not sent again, as the provider may have worked on it"))
    }

    @Test("HTTP/2: libcurl's own second send of a refused stream, stopped before it opened a connection (curl 42), is stale; another failure after it is not")
    func heldResendIsStale() {
        let held = CurlRuntime.error(CurlFailure(code: CURLE_ABORTED_BY_CALLBACK, detail: nil, reusedConnection: false,
                                                 waitedMicros: 2_000_000, refusedStreamResendHeld: true))
        #expect(held == .staleConnection("the provider refused the call's stream (GOAWAY) before reading it"))
        // Held on one address, let through on the next, then timed out there: the provider may have it.
        let later = CurlRuntime.error(CurlFailure(code: CURLE_OPERATION_TIMEDOUT, detail: "Operation timed out", reusedConnection: false,
                                                  waitedMicros: 2_000_000, requestSent: true, refusedStreamResendHeld: true))
        #expect(later == .timeout("Operation timed out", requestSent: true))
        #expect(later.providerMayHaveRead)
    }

    @Test("an answer libcurl could not read ('Received HTTP/0.9'), which it reports as an unsupported protocol, is not a connect error: never retried")
    func unreadableAnswerIsNotAConnectError() {
        let error = Self.map(CURLE_UNSUPPORTED_PROTOCOL, "Received HTTP/0.9 when not allowed", reused: false)
        #expect(error == .transport(code: Int(CURLE_UNSUPPORTED_PROTOCOL.rawValue), message: "Received HTTP/0.9 when not allowed"))
    }

    @Test("a stream the server reset, or curl giving up its own resends, is not stale")
    func resetStreamsAreNotStale() {
        #expect(!Self.isStale(Self.map(CURLE_HTTP2_STREAM, "HTTP/2 stream 3 was not closed cleanly: CANCEL (err 8)")))
        #expect(!Self.isStale(Self.map(CURLE_RECV_ERROR, "HTTP/2 stream 3 was reset")))
        #expect(!Self.isStale(Self.map(CURLE_SEND_ERROR, "Connection died, tried 5 times before giving up")))
        #expect(!Self.isStale(Self.map(CURLE_PARTIAL_FILE, "transfer closed with 10 bytes remaining to read")))
    }

    @Test("other codes keep their kinds, reused connection or not")
    func otherKinds() {
        #expect(Self.map(CURLE_OPERATION_TIMEDOUT, "Operation timed out") == .timeout("Operation timed out", requestSent: false))
        #expect(Self.map(CURLE_COULDNT_CONNECT, "Failed to connect") == .connect("Failed to connect"))
        #expect(Self.map(CURLE_SSL_CONNECT_ERROR, "handshake") == .connect("handshake"))
        #expect(Self.map(CURLE_PEER_FAILED_VERIFICATION, "SSL certificate problem") == .certificate("SSL certificate problem"))
        #expect(Self.map(CURLE_SSL_CACERT_BADFILE, "error importing CA certificate blob")
                == .certificate("error importing CA certificate blob"))
        #expect(Self.map(CURLE_WEIRD_SERVER_REPLY, "Unsupported HTTP version")
                == .transport(code: Int(CURLE_WEIRD_SERVER_REPLY.rawValue), message: "Unsupported HTTP version"))
        #expect(Self.map(CURLE_COULDNT_CONNECT, nil) == .connect("Couldn't connect to server"))
    }

    @Test("the provider may have read the request unless no connection was made, its certificate failed, a kept connection ended unread, or the deadline came first")
    func providerMayHaveRead() {
        #expect(!UpstreamError.connect("refused").providerMayHaveRead)
        #expect(!UpstreamError.certificate("bad").providerMayHaveRead)
        #expect(!UpstreamError.staleConnection("closed").providerMayHaveRead)
        #expect(!UpstreamError.timeout("Connection timed out", requestSent: false).providerMayHaveRead)
        #expect(UpstreamError.timeout("Operation timed out", requestSent: true).providerMayHaveRead)
        #expect(UpstreamError.cancelled.providerMayHaveRead)
        #expect(UpstreamError.transport(code: 56, message: "reset").providerMayHaveRead)
    }
}

import CCurl

/// What a failed transfer saw: enough to tell a pooled connection that died under a request the
/// provider never read (`UpstreamError.staleConnection`, safe to send again) from a failure of
/// a call the provider may have read, worked on and billed (never sent again).
struct CurlFailure {
    var code: CURLcode
    /// curl's error buffer; nil when curl left it empty.
    var detail: String?
    /// The transfer opened no connection of its own.
    var reusedConnection = false
    /// Some byte of the response (a header, an interim 1xx, body) arrived.
    var answerStarted = false
    /// From the request going out (curl's pre-transfer time) to the failure.
    var waitedMicros: Int64 = 0
    /// The request began to go out (curl reached its pre-transfer point).
    var requestSent = false
    /// HTTP/1.1: libcurl was about to send the call again by itself (its reused connection
    /// ended with no answer) this long after the request went out, past the stale window, and
    /// was stopped; its code then says nothing about the provider.
    var resendRefusedAfterMicros: Int64?
    /// HTTP/2: a GOAWAY refused the call's stream, and libcurl's own second send was stopped
    /// before it opened a connection of its own (`ConnectionRamp`): the gateway sends it again.
    /// Only when curl says so (42, the socket callback refused): a later address's socket may
    /// have been let through and failed otherwise, after the provider had the call.
    var refusedStreamResendHeld = false

    /// libcurl was about to send the call again after its answer had started (an HTTP/2 stream
    /// reset with HTTP_1_1_REQUIRED), and was stopped.
    var resendAfterAnswerRefused = false

    /// `refusedStreamResendHeld`, and curl failed the transfer for it.
    var refusedStreamNeverRead: Bool { refusedStreamResendHeld && code == CURLE_ABORTED_BY_CALLBACK }

    /// How long after the request went out the end of its connection still reads as the
    /// provider closing an idle connection as the request crossed it: that close reaches us
    /// within about a round trip. Later, the provider was working on the call (a non-streaming
    /// answer may take a minute to start), and sending it again could bill it twice.
    static let staleWindowMicros: Int64 = 500_000

    var isStaleConnection: Bool {
        guard reusedConnection, !answerStarted else { return false }
        switch connectionEnd {
        case .refused: return true
        case .closed: return waitedMicros <= Self.staleWindowMicros
        case nil: return false
        }
    }

    enum ConnectionEnd {
        /// A GOAWAY whose last stream id is below the transfer's (RFC 9113 §6.8: that stream
        /// was not processed), whenever it came.
        case refused
        /// The connection closed or broke under the transfer.
        case closed
    }

    /// How the connection under the transfer ended, as opposed to the server answering or
    /// resetting this one request (which it may have read). libcurl 7.88 reports, on HTTP/2:
    /// the connection's end under a stream as 18, "HTTP/2 stream 3 was not closed cleanly
    /// before end of the underlying stream" (later versions: 55, 56 or 92, "…underlying
    /// connection"); a stream the server reset as 92, "…not closed cleanly: CANCEL (err 8)", or
    /// 56, "HTTP/2 stream 3 was reset"; a GOAWAY refusing the stream as 16 with nothing in the
    /// error buffer. On HTTP/1.1 it sends a request whose reused connection died with no answer
    /// again by itself, then reports 52, 55 or 56 if that failed too ("Connection died, tried 5
    /// times" when it gave up).
    var connectionEnd: ConnectionEnd? {
        guard let detail else { return code == CURLE_HTTP2 ? .refused : nil }
        if detail.contains("before end of the underlying") { return .closed }
        switch code {
        case CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR:
            return detail.hasPrefix("HTTP/2 stream") || detail.hasPrefix("Connection died") ? nil : .closed
        default:
            return nil
        }
    }
}

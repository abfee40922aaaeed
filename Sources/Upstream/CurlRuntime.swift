import CCurl

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Process-wide setup libcurl needs once, before any handle exists.
enum CurlRuntime {
    /// Swift runs a global's initializer exactly once, thread-safely.
    private static let initialized: Bool = {
        // A peer closing mid-write must surface as an error, not kill the process;
        // CURLOPT_NOSIGNAL alone does not cover every write path (e.g. OpenSSL).
        signal(SIGPIPE, SIG_IGN)
        return curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK
    }()

    static func initialize() {
        precondition(initialized, "curl_global_init failed")
    }

    /// curl's own words for a failure: its error buffer, else the code's description.
    static func message(code: CURLcode, errorBuffer: UnsafePointer<CChar>) -> String {
        let message = String(cString: errorBuffer)
        return message.isEmpty ? String(cString: curl_easy_strerror(code)) : message
    }

    /// Maps a failed transfer's `CURLcode` (and curl's message) to the public error.
    /// `reusedConnection`: the transfer opened no connection of its own; `answerStarted`: some
    /// byte of the response (a header, an interim 1xx) arrived.
    static func error(code: CURLcode, message: String, reusedConnection: Bool = false,
                      answerStarted: Bool = false) -> UpstreamError {
        if reusedConnection, !answerStarted, connectionEnded(code: code, message: message) {
            return .staleConnection(message)
        }
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            return .timeout(message)
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE:
            return .certificate(message)
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT,
             CURLE_SSL_CONNECT_ERROR, CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT:
            return .connect(message)
        default:
            return .transport(code: Int(code.rawValue), message: message)
        }
    }

    /// The connection under the transfer closed or broke, as opposed to the server answering
    /// or resetting this one request (which it may have read). On HTTP/1.1 curl retries such an
    /// end on a new connection by itself, so these codes come back only when that failed too,
    /// on a connection of its own. On HTTP/2 it does not: libcurl 7.88 reports the connection's
    /// end under a stream as 18, "HTTP/2 stream 3 was not closed cleanly before end of the
    /// underlying stream" (8.x: 92, "…underlying connection"), and a stream the server reset as
    /// 92, "…not closed cleanly: CANCEL (err 8)", or 56, "HTTP/2 stream 3 was reset". A GOAWAY
    /// whose last stream id is below the transfer's (a server draining the connection; RFC 9113
    /// §6.8: that stream was not processed) fails it with 16 and no message of its own.
    private static func connectionEnded(code: CURLcode, message: String) -> Bool {
        switch code {
        case CURLE_HTTP2:
            return true
        case CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR:
            return !message.hasPrefix("HTTP/2 stream")
        case CURLE_PARTIAL_FILE, CURLE_HTTP2_STREAM:
            return message.contains("before end of the underlying")
        default:
            return false
        }
    }
}

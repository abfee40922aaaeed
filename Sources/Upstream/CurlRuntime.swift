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

    /// Whether a running transfer may let its sent body go (`CurlTransfer.releaseSentBody`): the
    /// options it sets mid-transfer were checked against libcurl 7.88's sources (what reads the
    /// body and the upload buffer, and when), which libcurl does not promise for other versions.
    static let releasesSentBodies: Bool = {
        tc_curl_version_num() >> 8 == 0x0758  // 7.88.x
    }()

    /// Maps a failed transfer to the public error.
    static func error(_ failure: CurlFailure) -> UpstreamError {
        if failure.resendAfterAnswerRefused {
            return .transport(code: Int(failure.code.rawValue), message:
                "the provider asked for the call again (over HTTP/1.1) after its answer had started; not sent twice")
        }
        if let waited = failure.resendRefusedAfterMicros {
            let seconds = (Double(waited) / 1e5).rounded() / 10
            return .transport(code: Int(failure.code.rawValue), message:
                "the connection closed without an answer \(seconds) s after the call went out; not sent again, as the provider may have worked on it")
        }
        if failure.refusedStreamNeverRead {
            return .staleConnection("the provider refused the call's stream (GOAWAY) before reading it")
        }
        let message = failure.detail ?? String(cString: curl_easy_strerror(failure.code))
        if failure.isStaleConnection { return .staleConnection(message) }
        switch failure.code {
        case CURLE_OPERATION_TIMEDOUT:
            return .timeout(message, requestSent: failure.requestSent)
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE:
            return .certificate(message)
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT,
             CURLE_SSL_CONNECT_ERROR, CURLE_URL_MALFORMAT:
            return .connect(message)
        // Not a connect error: libcurl 7.88 also reports an answer it could not read as one
        // ("Received HTTP/0.9 when not allowed": an HTTP/2 header block larger than its receive
        // buffer while other streams share the connection), after the provider had the call.
        // Retrying it as a connect error sent the call twice.
        default:
            return .transport(code: Int(failure.code.rawValue), message: message)
        }
    }
}

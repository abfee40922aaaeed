import Metering

/// Per-request knobs, as request headers. Names are matched case-insensitively.
public enum FakeHeader {
    /// Content deltas (output tokens) for this answer; overrides `chunkCount`.
    public static let chunks = "x-fake-chunks"
    /// Milliseconds (fractions allowed) before the first byte; overrides `firstByteDelay`.
    public static let firstByteDelayMS = "x-fake-first-byte-delay-ms"
    /// A name: the answer waits (before its first-byte delay) until the test calls
    /// `FakeLLMServer.release` with it; once released, answers held under it go at once.
    public static let hold = "x-fake-hold"
    /// Milliseconds before each content delta; overrides `chunkGap`.
    public static let chunkGapMS = "x-fake-chunk-gap-ms"
    /// One of `FakeFailure`'s raw values.
    public static let fail = "x-fake-fail"
    /// Any status >= 400: answer with it and the dialect's error body for it.
    public static let status = "x-fake-status"
    /// Input tokens served from the prompt cache (OpenAI `cached_tokens`, Anthropic
    /// `cache_read_input_tokens`), on top of the uncached input.
    public static let cachedTokens = "x-fake-cached-tokens"
    /// Input tokens written to the prompt cache (Anthropic `cache_creation_input_tokens`).
    public static let cacheWriteTokens = "x-fake-cache-write-tokens"
    /// Of those, written to the 1-hour cache (Anthropic `cache_creation.ephemeral_1h_input_tokens`).
    public static let cacheWrite1hTokens = "x-fake-cache-write-1h-tokens"
    /// Searches a server-side web search tool made (Anthropic `server_tool_use.web_search_requests`,
    /// Responses `web_search_call` output items).
    public static let webSearches = "x-fake-web-searches"
    /// Calls of the Responses API's file search tool (`file_search_call` output items).
    public static let fileSearches = "x-fake-file-searches"
    /// Audio tokens of a chat completion's prompt (OpenAI `prompt_tokens_details.audio_tokens`),
    /// on top of the text's.
    public static let audioInputTokens = "x-fake-audio-input-tokens"
    /// Audio tokens of a chat completion's answer (`completion_tokens_details.audio_tokens`), on
    /// top of the content deltas.
    public static let audioOutputTokens = "x-fake-audio-output-tokens"
    /// Anthropic: where the call ran when the request names no `inference_geo` (a workspace's
    /// `default_inference_geo`), reported in `usage.inference_geo` as the request's would be.
    public static let inferenceGeo = "x-fake-inference-geo"
    /// Hidden reasoning tokens (OpenAI `reasoning_tokens`), on top of the content deltas.
    public static let reasoningTokens = "x-fake-reasoning-tokens"
    /// Keys the recorded exchange; echoed back as `x-request-id` (OpenAI) / `request-id` (Anthropic).
    public static let requestID = "x-request-id"
    /// Pads the answer's head with an `x-fake-padding` header of this many bytes (real providers
    /// send 1-2 KB of rate-limit, cookie and tracing headers).
    public static let headerBytes = "x-fake-header-bytes"
}

/// Ways to misbehave, chosen with `x-fake-fail`.
public enum FakeFailure: String, Sendable, CaseIterable {
    /// 500 with the dialect's server-error body.
    case http500 = "http-500"
    /// 429 with the dialect's rate-limit body and `retry-after: 1`.
    case http429 = "http-429"
    /// 400 with the dialect's invalid-request body.
    case http400 = "http-400"
    /// 502 with an nginx-style HTML page.
    case html502 = "html-502"
    /// 200, `content-type: application/json`, a body that is not JSON.
    case nonJSON200 = "non-json-200"
    /// The normal answer, but the connection closes after half of its events (streaming) or
    /// half of its body bytes (non-streaming, with the full `content-length` announced). On
    /// HTTP/2 it is the stream that is reset, not the connection.
    case cutMidStream = "cut-mid-stream"
    /// Anthropic streams: half of the events, then an `error` event (`overloaded_error`, as
    /// Anthropic sends mid-stream when overloaded), and the stream ends there, cleanly. Other
    /// answers: the normal one.
    case errorMidStream = "error-mid-stream"
    /// Chat and completions streams end after their last chunk without `data: [DONE]`, as some
    /// OpenAI-compatible servers did (ik_llama.cpp's issue #467). Other answers: the normal one.
    case noDoneMarker = "no-done-marker"
    /// The connection is reset (RST, SO_LINGER 0) before any response byte; on HTTP/2, the
    /// stream (RST_STREAM).
    case resetBeforeHeaders = "reset-before-headers"
    /// The first request with its `x-request-id` closes its whole connection once its first-byte
    /// delay is over, before any response byte (on HTTP/2 the TCP connection under every stream,
    /// with no GOAWAY): with no delay, a server that drops a pooled connection just as a request
    /// arrives on it; with one, a server that dies while working on the call. A later request
    /// with the same id is answered normally. (Without `x-request-id` every request has an id of
    /// its own, so each one drops its connection.)
    case dropConnectionOnce = "drop-connection-once"
    /// As `drop-connection-once`, but on HTTP/2 a GOAWAY comes first whose last stream id is
    /// below this request's stream (this stream and later ones were not processed); the close
    /// follows at once, cutting the streams below it too (a drain cut short). On HTTP/1.1 the
    /// same as `drop-connection-once`.
    case goAwayOnce = "goaway-once"
    /// On HTTP/2, the head and the first event, then the stream is reset with HTTP_1_1_REQUIRED
    /// (a server, or a TLS-terminating proxy before it, that wants the call over HTTP/1.1 after
    /// all); on HTTP/1.1, the normal answer.
    case http11RequiredAfterHead = "http11-required-after-head"
    /// 400 whose message quotes the credential the request carried, split over several body
    /// writes: a careless upstream (or a debugging proxy) echoing headers.
    case echoCredential400 = "echo-credential-400"
    /// Streams: half of the events, then an error event quoting the credential (plain and as
    /// JSON escapes), split over several writes, and the stream ends there: chat and completions
    /// an `{"error":…}` chunk (no `[DONE]`), Responses an `error` event, Anthropic an `error`
    /// event. The stream comes with its `content-length`, as a buffering proxy would send it.
    /// Other answers: the normal one.
    case echoCredentialMidStream = "echo-credential-mid-stream"
    /// A request that carries `stream_options` gets 400 `Unknown parameter: 'stream_options'.`
    /// (`param` and `code` set), as servers that do not know the field answer (new-api issue
    /// #418's upstream; older Azure OpenAI API versions); others the normal answer.
    case refuseStreamOptions = "refuse-stream-options"
}

/// What the request headers ask of this one answer, read in one pass over the headers.
struct RequestKnobs {
    var chunks: Int
    var firstByteDelay: Duration
    var chunkGap: Duration
    var failure: FakeFailure?
    var status: Int?
    var cachedTokens = 0
    var cacheWriteTokens = 0
    var cacheWrite1hTokens = 0
    var reasoningTokens = 0
    var webSearches = 0
    var fileSearches = 0
    var audioInputTokens = 0
    var audioOutputTokens = 0
    var inferenceGeo: String?
    var hold: String?
    var headerBytes = 0
    var requestID: String?
    var authorization: String?
    var apiKey: String?
    var hasAnthropicVersion = false
    /// Set when a knob header has a value FakeLLM cannot use; the answer is a 400 naming it.
    var invalid: String?

    init(defaults: FakeLLMConfiguration) {
        chunks = defaults.chunkCount
        firstByteDelay = defaults.firstByteDelay
        chunkGap = defaults.chunkGap
    }

    mutating func apply(name: String, value: String) {
        let utf8 = name.utf8
        guard let first = utf8.first else { return }
        switch first | 0x20 {  // ASCII lower-case of the first letter
        case UInt8(ascii: "x"):
            if name.utf8.equals(ignoringASCIICase: FakeHeader.requestID.utf8) {
                requestID = value
            } else if name.utf8.equals(ignoringASCIICase: "x-api-key".utf8) {
                apiKey = value
            } else if utf8.count > 7, utf8.starts(withIgnoringASCIICase: "x-fake-".utf8) {
                applyKnob(name: name, value: value)
            }
        case UInt8(ascii: "a"):
            if name.utf8.equals(ignoringASCIICase: "authorization".utf8) {
                authorization = value
            } else if name.utf8.equals(ignoringASCIICase: "anthropic-version".utf8) {
                hasAnthropicVersion = true
            }
        default:
            break
        }
    }

    private mutating func applyKnob(name: String, value: String) {
        let trimmed = value.trimmingASCIISpaces()
        if name.utf8.equals(ignoringASCIICase: FakeHeader.chunks.utf8) {
            chunks = count(trimmed, name: name, limit: 1_000_000) ?? chunks
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.firstByteDelayMS.utf8) {
            firstByteDelay = milliseconds(trimmed, name: name) ?? firstByteDelay
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.hold.utf8) {
            hold = trimmed
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.chunkGapMS.utf8) {
            chunkGap = milliseconds(trimmed, name: name) ?? chunkGap
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.fail.utf8) {
            failure = FakeFailure(rawValue: trimmed.lowercased())
            if failure == nil {
                let known = FakeFailure.allCases.map(\.rawValue).joined(separator: ", ")
                invalid = "\(name): unknown failure mode '\(trimmed)' (known: \(known))"
            }
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.status.utf8) {
            if let code = count(trimmed, name: name, limit: 599), code >= 100 { status = code }
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.cachedTokens.utf8) {
            cachedTokens = count(trimmed, name: name, limit: Int(Int32.max)) ?? 0
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.cacheWriteTokens.utf8) {
            cacheWriteTokens = count(trimmed, name: name, limit: Int(Int32.max)) ?? 0
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.cacheWrite1hTokens.utf8) {
            cacheWrite1hTokens = count(trimmed, name: name, limit: Int(Int32.max)) ?? 0
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.webSearches.utf8) {
            webSearches = count(trimmed, name: name, limit: 10_000) ?? 0
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.fileSearches.utf8) {
            fileSearches = count(trimmed, name: name, limit: 10_000) ?? 0
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.audioInputTokens.utf8) {
            audioInputTokens = count(trimmed, name: name, limit: Int(Int32.max)) ?? 0
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.audioOutputTokens.utf8) {
            audioOutputTokens = count(trimmed, name: name, limit: Int(Int32.max)) ?? 0
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.inferenceGeo.utf8) {
            inferenceGeo = trimmed
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.reasoningTokens.utf8) {
            reasoningTokens = count(trimmed, name: name, limit: Int(Int32.max)) ?? 0
        } else if name.utf8.equals(ignoringASCIICase: FakeHeader.headerBytes.utf8) {
            headerBytes = count(trimmed, name: name, limit: 1 << 20) ?? 0
        }
    }

    private mutating func count(_ value: String, name: String, limit: Int) -> Int? {
        guard let n = Int(value), n >= 0, n <= limit else {
            invalid = "\(name): expected an integer from 0 to \(limit), got '\(value)'"
            return nil
        }
        return n
    }

    private mutating func milliseconds(_ value: String, name: String) -> Duration? {
        guard let ms = Double(value), ms >= 0, ms <= 3_600_000 else {
            invalid = "\(name): expected milliseconds from 0 to 3600000, got '\(value)'"
            return nil
        }
        return .nanoseconds(Int64(ms * 1_000_000))
    }
}

extension String {
    func trimmingASCIISpaces() -> String {
        guard let first = utf8.first, let last = utf8.last, first == 0x20 || last == 0x20 else { return self }
        var slice = Substring(self)
        while slice.first == " " { slice.removeFirst() }
        while slice.last == " " { slice.removeLast() }
        return String(slice)
    }
}

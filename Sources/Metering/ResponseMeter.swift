import NIOCore

/// What metering learned from one upstream response.
public struct MeterResult: Sendable, Hashable {
    /// Normalised usage the provider reported; nil if none (or nonsense) was seen.
    public var usage: Usage?
    /// The model the provider says served the call.
    public var servedModel: String?
    /// The provider's error message (error body, or an error event in a stream), ≤ 500 characters.
    public var providerErrorMessage: String?
    /// The response ended the way a complete one does: the stream's terminal event was seen
    /// (`[DONE]`, `response.completed`…, `message_stop`), or the body is one whole JSON value.
    public var sawTerminalEvent: Bool
    /// The response was relayed as a server-sent event stream.
    public var isStream: Bool
    /// `OutputEstimate` of the text sent: bills an answer without usable usage (a cut stream,
    /// a body whose usage is missing or nonsense); 0 when not needed.
    public var estimatedOutputTokens = 0
    /// Of `estimatedOutputTokens`, those of sound (a spoken answer's `audio.data`).
    public var estimatedAudioOutputTokens = 0
    /// Searches a stream showed finished (`StreamReading.searchesSeen`): billed with the estimate
    /// of a stream cut before its usage. `usage`, when there is one, already counts them.
    public var searchesSeen = SearchCalls()
    /// A body over `ResponseMeter.bodyLimit`: relayed intact, not read whole (no JSON check);
    /// its usage is read from its last 64 KiB, where a top-level `usage` ends the document.
    public var bodyUnread = false
    /// The stream reported a failure (Anthropic or Responses `error`, Responses `response.failed`,
    /// a chat chunk with an `error` object): relayed whole, but the call failed.
    public var streamFailed = false
    /// The priced service tier the answer says served the call (`ResponseReading.servedTier`).
    public var servedTier: String??
    /// Where the answer says the call ran (`ResponseReading.servedGeo`).
    public var servedGeo: String?

    public init(usage: Usage? = nil, servedModel: String? = nil, providerErrorMessage: String? = nil,
                sawTerminalEvent: Bool = false, isStream: Bool = false) {
        self.usage = usage
        self.servedModel = servedModel
        self.providerErrorMessage = providerErrorMessage
        self.sawTerminalEvent = sawTerminalEvent
        self.isStream = isStream
    }
}

/// The relay's view of one upstream response: which bytes go to the client now, which wait
/// for the call's ledger row to commit (invariant 1), and the usage they carried. Pure: no I/O.
///
/// Streams (`text/event-stream`, status < 400) are released event by event as each completes;
/// an event is never split, so when the provider writes whole events the chunks go out as
/// they came. The terminal event and anything after it are held for `finish()`. Every other
/// response is released chunk by chunk one behind: the latest chunk is held. Concatenating
/// everything `consume` returned and `finish().held` gives back the upstream bytes exactly,
/// minus the usage event when `stripInjectedUsage` is set, and, with a `providerKey`, with the
/// key scrubbed from a stream and its unfinished last event left out (`Streaming`).
///
/// Non-streamed bodies are kept (as references to the chunks, not copies) for reading usage
/// at `finish()`, up to `bodyLimit` bytes; a larger body is relayed intact, its usage read from
/// its last 64 KiB.
/// A stream event that grows past `bodyLimit` without ending turns the rest of the stream into
/// a pass-through (nothing held or read after it but, with a provider key, the few bytes that
/// could begin a copy of it), so memory stays bounded.
public struct ResponseMeter: Sendable {
    /// Largest non-streamed body read for usage.
    public static let bodyLimit = 16 << 20

    private var machine: StateMachine
    /// Bytes handed out so far (`consume`'s output, then `finish()`'s held bytes).
    public private(set) var bytesForwarded = 0

    /// `stripInjectedUsage`: the proxy set `stream_options.include_usage` for an OpenAI
    /// chat/completions client that did not ask, so the usage chunk is read and not relayed.
    /// `providerKey`: the gateway's key at the provider, scrubbed from a stream (`Streaming`):
    /// a provider may quote the request's headers in an error event, as in an error page.
    public init(endpoint: Endpoint, stripInjectedUsage: Bool, providerKey: String? = nil) {
        machine = StateMachine(endpoint: endpoint, stripInjectedUsage: stripInjectedUsage, providerKey: providerKey)
    }

    /// The upstream status and content type; once, before any body bytes.
    public mutating func head(status: Int, contentType: String?) {
        machine.head(status: status, isEventStream: ResponseMeter.isEventStream(contentType))
    }

    /// Upstream body bytes; returns the bytes to send to the client now, in order.
    public mutating func consume(_ chunk: ByteBuffer) -> [ByteBuffer] {
        let out = machine.consume(chunk)
        for slice in out { bytesForwarded += slice.readableBytes }
        return out
    }

    /// Upstream ended (or was cut off): the bytes to send once the ledger row commits, and what
    /// the response said about usage.
    public mutating func finish() -> (held: [ByteBuffer], result: MeterResult) {
        let (held, result) = machine.finish()
        for slice in held { bytesForwarded += slice.readableBytes }
        return (held, result)
    }

    /// Whether the response is being relayed as an event stream (known after `head`).
    public var isStreaming: Bool { machine.isStreaming }

    /// `text/event-stream`, parameters and case ignored. A byte scan: it runs on every answer.
    static func isEventStream(_ contentType: String?) -> Bool {
        mediaType(contentType)?.equals(ignoringASCIICase: "text/event-stream".utf8) ?? false
    }

    /// `application/json` or a `+json` type, parameters and case ignored (no copy: every answer).
    public static func isJSON(_ contentType: String?) -> Bool {
        guard let media = mediaType(contentType) else { return false }
        return media.equals(ignoringASCIICase: "application/json".utf8)
            || (media.count > 5 && media.suffix(5).equals(ignoringASCIICase: "+json".utf8))
    }

    /// The media type of a `content-type` value, without its parameters and blanks.
    private static func mediaType(_ contentType: String?) -> Substring.UTF8View? {
        guard let contentType else { return nil }
        let bytes = contentType.utf8
        let isBlank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        let media = bytes.prefix { $0 != UInt8(ascii: ";") }
        guard let first = media.firstIndex(where: { !isBlank($0) }),
              let last = media.lastIndex(where: { !isBlank($0) }) else { return nil }
        return bytes[first...last]
    }
}

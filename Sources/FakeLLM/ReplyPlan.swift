import Metering
import NIOCore
import NIOHTTP1

/// One body write, sent `delay` after the previous one (the first after `firstByteDelay`).
struct ReplyPiece {
    var bytes: ByteBuffer
    var delay: Duration
}

/// How an answer ends.
enum ReplyEnding: Equatable {
    /// Every piece, then the end of the message; keep-alive as the client asked.
    case complete
    /// Close the connection after this many pieces (no terminating chunk).
    case cutAfter(Int)
    /// HTTP/2: reset the stream with HTTP_1_1_REQUIRED after this many pieces. HTTP/1.1: the
    /// whole answer (`complete`).
    case http11RequiredAfter(Int)
    /// Reset the connection before any response byte.
    case resetBeforeHeaders
    /// Close the whole connection before any response byte: on HTTP/2, every stream on it,
    /// after a GOAWAY refusing this stream when `goAway`.
    case dropConnection(goAway: Bool)
}

/// A fully built answer: status, headers and timed body pieces, computed before the first
/// write so the writer only paces bytes.
struct ReplyPlan {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var pieces: [ReplyPiece]
    var ending: ReplyEnding = .complete
    /// Streams send their head as soon as the first-byte delay is over, before any paced
    /// piece; plain bodies send head and body together.
    var headFirst = false

    /// A complete body with `content-length`, sent `delay` after the first-byte delay.
    static func body(status: HTTPResponseStatus = .ok, contentType: String = "application/json",
                     _ text: String, delay: Duration = .zero) -> ReplyPlan {
        let bytes = ByteBuffer(string: text)
        var headers = HTTPHeaders()
        headers.reserveCapacity(6)
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(bytes.readableBytes))
        return ReplyPlan(status: status, headers: headers, pieces: [ReplyPiece(bytes: bytes, delay: delay)])
    }

    /// A server-sent-event stream: chunked transfer encoding, one write per event.
    static func eventStream(_ pieces: [ReplyPiece]) -> ReplyPlan {
        var headers = HTTPHeaders()
        headers.reserveCapacity(6)
        headers.add(name: "content-type", value: "text/event-stream; charset=utf-8")
        headers.add(name: "cache-control", value: "no-cache")
        return ReplyPlan(status: .ok, headers: headers, pieces: pieces, headFirst: true)
    }

    static func reset() -> ReplyPlan {
        ReplyPlan(status: .ok, headers: HTTPHeaders(), pieces: [], ending: .resetBeforeHeaders)
    }

    static func drop(goAway: Bool) -> ReplyPlan {
        ReplyPlan(status: .ok, headers: HTTPHeaders(), pieces: [], ending: .dropConnection(goAway: goAway))
    }

    /// Sends a one-piece body in `count` writes 5 ms apart (the same bytes and `content-length`),
    /// so a reader sees it in several chunks.
    mutating func splitBody(into count: Int) {
        guard pieces.count == 1, count > 1 else { return }
        pieces = Self.pieces(of: pieces[0].bytes, splitInto: count, firstAfter: pieces[0].delay)
    }

    /// Keeps the first half of a stream's events, then `last` (in `splitInto` writes 5 ms
    /// apart), and ends the stream normally.
    mutating func endHalfway(with last: ByteBuffer, splitInto count: Int = 1) {
        pieces = Array(pieces.prefix(pieces.count / 2)) + Self.pieces(of: last, splitInto: count, firstAfter: .zero)
    }

    /// `bytes` in `count` writes of equal size (the last one shorter), 5 ms apart after the first.
    private static func pieces(of bytes: ByteBuffer, splitInto count: Int, firstAfter delay: Duration) -> [ReplyPiece] {
        var rest = bytes
        let size = max(1, (rest.readableBytes + count - 1) / max(1, count))
        var split: [ReplyPiece] = []
        while rest.readableBytes > 0, let slice = rest.readSlice(length: min(size, rest.readableBytes)) {
            split.append(ReplyPiece(bytes: slice, delay: split.isEmpty ? delay : .milliseconds(5)))
        }
        return split
    }

    /// Keeps the first half of the answer, then closes: half the events of a stream, or half
    /// the bytes of a body whose full `content-length` was announced.
    mutating func cutHalfway() {
        if pieces.count == 1 {
            var whole = pieces[0].bytes
            let firstHalf = whole.readSlice(length: whole.readableBytes / 2) ?? ByteBuffer()
            pieces = [ReplyPiece(bytes: firstHalf, delay: pieces[0].delay), ReplyPiece(bytes: whole, delay: .zero)]
            ending = .cutAfter(1)
        } else {
            ending = .cutAfter(pieces.count / 2)
        }
    }
}

extension ByteBuffer {
    /// `data: <json>\n\n`
    static func sseData(_ json: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(json.utf8.count + 8)
        buffer.writeStaticString("data: ")
        buffer.writeString(json)
        buffer.writeStaticString("\n\n")
        return buffer
    }

    /// `event: <name>\ndata: <json>\n\n`
    static func sseEvent(_ name: String, _ json: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(name.utf8.count + json.utf8.count + 16)
        buffer.writeStaticString("event: ")
        buffer.writeString(name)
        buffer.writeStaticString("\ndata: ")
        buffer.writeString(json)
        buffer.writeStaticString("\n\n")
        return buffer
    }
}

/// `text` as the inside of a JSON string literal (quotes not included).
func jsonEscaped(_ text: String) -> String { JSONString.escaped(text) }

import Testing
@testable import Upstream

@Suite struct ResponseHeadParserTests {
    private func parse(_ lines: [String]) -> (head: UpstreamHead?, completions: Int) {
        var parser = ResponseHeadParser()
        var head: UpstreamHead?
        var completions = 0
        for line in lines {
            if let h = parser.parse(line: line) {
                head = h
                completions += 1
            }
        }
        return (head, completions)
    }

    @Test func http11StatusAndHeadersKeepNamesAndOrder() throws {
        let (head, n) = parse([
            "HTTP/1.1 200 OK\r\n", "Content-Type: text/event-stream\r\n",
            "X-Request-ID:  abc \r\n", "set-cookie: a=1\r\n", "Set-Cookie: b=2\r\n", "\r\n",
        ])
        let h = try #require(head)
        #expect(n == 1)
        #expect(h.status == 200)
        #expect(h.reason == "OK")
        #expect(h.httpVersion == .http1_1)
        #expect(h.headers.map(\.name) == ["Content-Type", "X-Request-ID", "set-cookie", "Set-Cookie"])
        #expect(h.headers.map(\.value) == ["text/event-stream", "abc", "a=1", "b=2"])
        #expect(h.first("x-request-id") == "abc")
        #expect(h.first("SET-COOKIE") == "a=1")
        #expect(h.first("missing") == nil)
    }

    /// The transfer keeps its parser as long as the stream lasts: the head goes to the caller,
    /// and the parser keeps no reference to its headers.
    @Test func theFinalHeadIsHandedOverNotKept() throws {
        var parser = ResponseHeadParser()
        var head: UpstreamHead?
        for line in ["HTTP/2 200\r\n", "content-type: text/event-stream\r\n", "x-request-id: req-1\r\n", "\r\n"] {
            if let h = parser.parse(line: line) { head = h }
        }
        var h = try #require(head)
        head = nil
        let storage = { (h: UpstreamHead) in h.headers.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) } }
        let before = storage(h)
        try #require(h.headers.capacity > h.headers.count)  // else the append below grows it anyway
        h.headers.append((name: "x-more", value: "1"))  // within the room reserved: a copy only if shared
        #expect(storage(h) == before)
        #expect(parser.isComplete)
        #expect(parser.parse(line: "x-trailer: 1\r\n") == nil)
    }

    @Test func http2StatusLineHasNoMinorVersionAndNoReason() throws {
        let h = try #require(parse(["HTTP/2 200 \r\n", "content-type: application/json\r\n", "\r\n"]).head)
        #expect(h.status == 200)
        #expect(h.httpVersion == .http2)
        #expect(h.reason == "")
        #expect(h.httpVersion.description == "HTTP/2")
    }

    @Test func interimResponsesAreSkipped() throws {
        let (head, n) = parse([
            "HTTP/1.1 100 Continue\r\n", "\r\n",
            "HTTP/1.1 103 Early Hints\r\n", "Link: </a>; rel=preload\r\n", "\r\n",
            "HTTP/1.1 404 Not Found\r\n", "Content-Length: 0\r\n", "\r\n",
        ])
        let h = try #require(head)
        #expect(n == 1)
        #expect(h.status == 404)
        #expect(h.reason == "Not Found")
        #expect(h.headers.count == 1)
        #expect(h.first("link") == nil)
    }

    @Test func trailersAfterTheHeadAreIgnored() {
        let (head, n) = parse([
            "HTTP/1.1 200 OK\r\n", "Transfer-Encoding: chunked\r\n", "\r\n", "X-Trailer: 1\r\n", "\r\n",
        ])
        #expect(n == 1)
        #expect(head?.headers.count == 1)
    }

    @Test func foldedLinesJoinThePreviousValueAndJunkIsSkipped() {
        let (head, _) = parse([
            "HTTP/1.0 500 Internal Server Error\r\n", "X-Long: part one\r\n", "\t part two\r\n",
            "no colon here\r\n", "\r\n",
        ])
        #expect(head?.httpVersion == .http1_0)
        #expect(head?.reason == "Internal Server Error")
        #expect(head?.headers.count == 1)
        #expect(head?.first("x-long") == "part one part two")
    }

    @Test func rawBytesWithoutCRLFParseToo() throws {
        var parser = ResponseHeadParser()
        var head: UpstreamHead?
        for line in ["HTTP/1.1 201 Created\n", "A: b", ""] {
            let bytes = Array(line.utf8)
            bytes.withUnsafeBytes { head = parser.parse(line: $0) ?? head }
        }
        #expect(try #require(head).status == 201)
        #expect(head?.first("a") == "b")
        #expect(parser.isComplete)
    }

    @Test func garbageBeforeTheStatusLineIsNotAHead() {
        #expect(parse(["hello\r\n", "\r\n"]).head == nil)
        #expect(parse(["HTTP/1.1 abc\r\n", "\r\n"]).head == nil)
    }
}

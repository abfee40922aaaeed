import NIOCore
import Testing
@testable import Metering

@Suite struct SSEParserTests {
    /// Parses a stream fed in the given pieces, finish included.
    func parse(_ pieces: [ArraySlice<UInt8>]) -> [SSEEvent] {
        var parser = SSEParser()
        var events: [SSEEvent] = []
        for piece in pieces { events += parser.feed(piece) }
        return events + parser.finishEvents()
    }

    func parse(_ text: String) -> [SSEEvent] { parse([Array(text.utf8)[...]]) }

    /// Every way to cut the stream in two, and into single bytes, gives the same events.
    func expectSplitInvariant(_ bytes: [UInt8], _ expected: [SSEEvent], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(parse([bytes[...]]) == expected, sourceLocation: sourceLocation)
        for cut in 0...bytes.count {
            let events = parse([bytes[..<cut], bytes[cut...]])
            #expect(events == expected, "cut at \(cut)", sourceLocation: sourceLocation)
            if events != expected { return }
        }
        #expect(parse(bytes.map { [$0][...] }) == expected, "single bytes", sourceLocation: sourceLocation)
    }

    @Test func fieldsPerSpec() {
        let text = ": a comment\nevent: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\ndata:one\ndata:  two\ndata\n\n"
        let events = parse(text)
        #expect(events.map(\.event) == ["add", "remove", "message"])
        #expect(events.map(\.data) == ["73857293", "2153", "one\n two\n"])
        // Ranges tile the stream: each from its first line (the comment is part of the first block).
        #expect(events.map(\.range) == [0..<39, 39..<65, 65..<text.utf8.count])
    }

    @Test func idAndRetry() {
        let events = parse("id: 1\ndata: a\n\ndata: b\n\nid\nretry: 1500\ndata: c\n\nretry: 1x\nid: a\u{0}b\ndata: d\n\n")
        #expect(events.map(\.id) == ["1", "1", "", ""])
        #expect(events.map(\.retry) == [nil, nil, 1500, nil])
    }

    @Test func blocksWithoutDataAreNotDispatched() {
        let events = parse("event: ping\n\n: keep-alive\n\n\n\ndata: x\n\n")
        #expect(events.count == 1)
        #expect(events[0].data == "x")
        // The event's range starts after the blank line that ended the previous block.
        #expect(events[0].range == 29..<38)
    }

    @Test func incompleteEventAtEndIsDiscarded() {
        #expect(parse("data: a\n\ndata: b\n").map(\.data) == ["a"])
        #expect(parse("data: a\n\ndata: b").map(\.data) == ["a"])
    }

    @Test func onlyOneLeadingSpaceIsStripped() {
        #expect(parse("data:   x \n\n").first?.data == "  x ")
        #expect(parse("data:\n\n").first?.data == "")
    }

    @Test func byteOrderMarkIsSkipped() {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("data: x\n\n".utf8)
        let events = parse([bytes[...]])
        #expect(events.map(\.data) == ["x"])
        #expect(events.first?.range == 0..<bytes.count)
        expectSplitInvariant(bytes, events)
    }

    @Test func allLineEndingsAreOne() {
        let lf = parse("event: e\ndata: 1\ndata: 2\n\n")
        let crlf = parse("event: e\r\ndata: 1\r\ndata: 2\r\n\r\n")
        let cr = parse("event: e\rdata: 1\rdata: 2\r\r")
        #expect(lf.map(\.data) == ["1\n2"])
        #expect(crlf.map(\.data) == ["1\n2"])
        #expect(cr.map(\.data) == ["1\n2"])
        #expect(crlf.first?.range == 0..<30)
        #expect(cr.first?.range == 0..<26)
        // A lone CR ending the stream still ends the event.
        #expect(parse("data: x\r\r").map(\.data) == ["x"])
    }

    @Test func crlfSplitAcrossChunksIsOneLineEnd() {
        var parser = SSEParser()
        #expect(parser.feed(Array("data: a\r".utf8)).isEmpty)
        // Without care the '\n' would read as a blank line and dispatch early.
        #expect(parser.feed(Array("\ndata: b\r".utf8)).isEmpty)
        let events = parser.feed(Array("\n\r\n".utf8))
        #expect(events.map(\.data) == ["a\nb"])
        #expect(events.first?.range == 0..<20)
        #expect(parser.streamOffset == 20)
        #expect(parser.blockStart == 20)
    }

    @Test func realStreamsAreSplitInvariant() {
        for newline in ["\n", "\r\n", "\r"] {
            for blocks in [Fixtures.chatStreamEvents, Fixtures.responsesStreamEvents, Fixtures.anthropicStreamEvents] {
                let bytes = Fixtures.sse([": hello"] + blocks, newline: newline)
                let events = parse([bytes[...]])
                #expect(events.count == blocks.count)
                expectSplitInvariant(bytes, events)
            }
        }
    }

    @Test func rangesCoverEachEventsBytes() {
        let bytes = Fixtures.sse(Fixtures.anthropicStreamEvents, newline: "\r\n")
        let events = parse([bytes[...]])
        let blocks = Fixtures.anthropicStreamEvents
        for (event, block) in zip(events, blocks) {
            let text = String(decoding: bytes[event.range], as: UTF8.self)
            #expect(text == block.split(separator: "\n").joined(separator: "\r\n") + "\r\n\r\n")
        }
        #expect(events.last?.range.upperBound == bytes.count)
    }

    @Test func pullAPIExposesFieldsWithoutCopies() {
        var parser = SSEParser()
        let bytes = Array("event: message_delta\ndata: {\"a\":1}\n\ndata: [DONE]\n\n".utf8)
        var ranges: [Range<Int>] = []
        var names: [String] = []
        bytes.withUnsafeBytes { raw in
            var index = 0
            while let range = parser.next(in: raw, from: &index) {
                ranges.append(range)
                names.append(parser.eventType + "|" + parser.data)
            }
            #expect(index == raw.count)
        }
        #expect(ranges == [0..<36, 36..<50])
        #expect(names == ["message_delta|{\"a\":1}", "message|[DONE]"])
    }

    @Test func feedsByteBuffers() {
        var parser = SSEParser()
        let events = parser.feed(ByteBuffer(string: "data: x\n\n"))
        #expect(events == [SSEEvent(data: "x", range: 0..<9)])
    }
}

import NIOCore
import Testing
@testable import Metering

/// What one relay of a response produced.
struct Relay: Equatable {
    var sent: [[UInt8]]  // per consume call, the bytes returned
    var held: [UInt8]
    var result: MeterResult

    var sentBytes: [UInt8] { sent.flatMap { $0 } }
    var all: [UInt8] { sentBytes + held }
}

func relay(_ endpoint: Endpoint, _ chunks: [ArraySlice<UInt8>], strip: Bool = false,
           status: Int = 200, contentType: String? = "text/event-stream; charset=utf-8",
           providerKey: String? = nil) -> Relay {
    var meter = ResponseMeter(endpoint: endpoint, stripInjectedUsage: strip, providerKey: providerKey)
    meter.head(status: status, contentType: contentType)
    var sent: [[UInt8]] = []
    for chunk in chunks {
        sent.append(meter.consume(ByteBuffer(chunk)).flatMap(\.bytes))
    }
    let (held, result) = meter.finish()
    let out = Relay(sent: sent, held: held.flatMap(\.bytes), result: result)
    #expect(meter.bytesForwarded == out.all.count)
    return out
}

@Suite struct ResponseMeterTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var endpoint: Endpoint
        var blocks: [String]
        var usage: Usage
        var model: String
        var testDescription: String { endpoint.rawValue }
    }

    static let cases = [
        Case(endpoint: .chatCompletions, blocks: Fixtures.chatStreamEvents, usage: Fixtures.chatStreamUsage, model: Fixtures.chatStreamModel),
        Case(endpoint: .completions, blocks: Fixtures.completionsStreamEvents, usage: Usage(inputTokens: 5, outputTokens: 16),
             model: "gpt-3.5-turbo-instruct"),
        Case(endpoint: .responses, blocks: Fixtures.responsesStreamEvents, usage: Fixtures.responsesUsage, model: Fixtures.responsesModel),
        Case(endpoint: .messages, blocks: Fixtures.anthropicStreamEvents, usage: Fixtures.anthropicUsage, model: Fixtures.anthropicModel),
    ]

    /// Every cut in two, and single bytes, give the same bytes out and the same usage; the
    /// terminal event (the last block) never leaves through `consume`.
    @Test(arguments: cases, ["\n", "\r\n"])
    func splitAtEveryByte(_ c: Case, newline: String) {
        let bytes = Fixtures.sse(c.blocks, newline: newline)
        let terminalStart = bytes.count - Fixtures.sse([c.blocks.last!], newline: newline).count
        var expected = MeterResult(usage: c.usage, servedModel: c.model, sawTerminalEvent: true, isStream: true)
        // The output estimate must not depend on the read boundaries either.
        expected.estimatedOutputTokens = relay(c.endpoint, [bytes[...]]).result.estimatedOutputTokens
        // The chat fixture's usage chunk says `"service_tier":"default"`: the standard tier.
        if c.endpoint == .chatCompletions { expected.servedTier = .some(nil) }
        #expect(expected.estimatedOutputTokens > 0)
        var splits = (0...bytes.count).map { [bytes[..<$0], bytes[$0...]] }
        splits.append(bytes.indices.map { bytes[$0...$0] })
        for chunks in splits {
            let r = relay(c.endpoint, chunks)
            #expect(r.all == bytes)
            #expect(r.result == expected)
            #expect(r.sentBytes == Array(bytes[..<terminalStart]), "terminal held")
            if r.all != bytes || r.result != expected || r.sentBytes.count != terminalStart { break }
        }
    }

    /// When the provider writes whole events, chunks go out one-to-one.
    @Test(arguments: cases)
    func wholeEventsPassOneToOne(_ c: Case) {
        let chunks = c.blocks.map { Fixtures.sse([$0])[...] }
        let r = relay(c.endpoint, chunks)
        #expect(r.sent == chunks.dropLast().map(Array.init) + [[]])
        #expect(r.held == Array(chunks.last!))
        #expect(r.result.usage == c.usage)
    }

    @Test("the output estimate counts each event's delta text, escapes as sent, empty deltas not at all")
    func outputEstimateOfAStream() {
        let events = [
            #"data: {"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            #"data: {"choices":[{"delta":{"content":"Hello"}}]}"#,
            #"data: {"choices":[{"delta":{"content":" \"wor\"ld\" and a longer tail of text"}}]}"#,
            #"data: {"choices":[{"delta":{"content":"!"}}]}"#,
        ]
        let bytes = Fixtures.sse(events)
        let r = relay(.chatCompletions, [bytes[...]])
        // 3 text events; 5 + 36 + 1 = 42 bytes of text → 11 tokens by bytes.
        #expect(r.result.estimatedOutputTokens == 11)
        #expect(r.result.usage == nil)
    }

    @Test("Responses and Anthropic streams: only delta events count; the done events repeat the text")
    func outputEstimateCountsDeltasOnly() {
        let responses = Fixtures.sse([
            "event: response.output_text.delta\n" + #"data: {"type":"response.output_text.delta","delta":"Hello world"}"#,
            "event: response.output_text.done\n" + #"data: {"type":"response.output_text.done","text":"Hello world"}"#,
            "event: response.content_part.done\n" + #"data: {"type":"response.content_part.done","part":{"type":"output_text","text":"Hello world"}}"#,
        ])
        #expect(relay(.responses, [responses[...]]).result.estimatedOutputTokens == 3)  // 11 bytes, once
        let messages = Fixtures.sse([
            "event: content_block_start\n" + #"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            "event: content_block_delta\n" + #"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello world"}}"#,
        ])
        #expect(relay(.messages, [messages[...]]).result.estimatedOutputTokens == 3)
    }

    @Test func injectedUsageChunkIsStripped() {
        let bytes = Fixtures.sse(Fixtures.chatStreamEvents)
        var without = Fixtures.chatStreamEvents
        without.remove(at: Fixtures.chatStreamUsageIndex)
        let expected = Fixtures.sse(without)
        for cut in 0...bytes.count {
            let r = relay(.chatCompletions, [bytes[..<cut], bytes[cut...]], strip: true)
            #expect(r.all == expected, "cut at \(cut)")
            #expect(r.result.usage == Fixtures.chatStreamUsage)
            #expect(r.held == Fixtures.sse(["data: [DONE]"]))
            if r.all != expected { break }
        }
        let single = relay(.chatCompletions, bytes.indices.map { bytes[$0...$0] }, strip: true)
        #expect(single.all == expected)
        // A client that asked for usage gets the chunk.
        #expect(relay(.chatCompletions, [bytes[...]], strip: false).all == bytes)
        // Responses and Anthropic streams are never stripped.
        let anthropic = Fixtures.sse(Fixtures.anthropicStreamEvents)
        #expect(relay(.messages, [anthropic[...]], strip: true).all == anthropic)
    }

    @Test func keepAlivesAndCommentsAreNeverLost() {
        let bytes = Array(": OPENROUTER PROCESSING\n\n".utf8) + Fixtures.sse(Fixtures.chatStreamEvents) + Array(": trailing\n".utf8)
        for cut in 0...bytes.count {
            let r = relay(.chatCompletions, [bytes[..<cut], bytes[cut...]], strip: true)
            var without = Fixtures.chatStreamEvents
            without.remove(at: Fixtures.chatStreamUsageIndex)
            #expect(r.all == Array(": OPENROUTER PROCESSING\n\n".utf8) + Fixtures.sse(without) + Array(": trailing\n".utf8))
        }
        // A complete keep-alive goes out at once.
        let ping = relay(.messages, [Array(": ping\n\n".utf8)[...], Array("event: ping\ndata: {}\n\n".utf8)[...]])
        #expect(ping.sent == [Array(": ping\n\n".utf8), Array("event: ping\ndata: {}\n\n".utf8)])
    }

    @Test func partialEventIsHeldUntilComplete() {
        var meter = ResponseMeter(endpoint: .messages, stripInjectedUsage: false)
        meter.head(status: 200, contentType: "text/event-stream")
        #expect(meter.isStreaming)
        let first = Array("event: ping\ndata: {\"type\": \"ping\"}\n\nevent: content_block_delta\ndata: {\"ty".utf8)
        let out = meter.consume(ByteBuffer(first)).flatMap(\.bytes)
        #expect(out == Array("event: ping\ndata: {\"type\": \"ping\"}\n\n".utf8))
        let out2 = meter.consume(ByteBuffer(Array("pe\":\"content_block_delta\"}\n\n".utf8))).flatMap(\.bytes)
        #expect(out2 == Array("event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n".utf8))
    }

    @Test func chatStreamWithUsageIsWholeWithoutDoneMarker() {
        let head = #"data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"# + "\n\n"
        let finish = #"data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"# + "\n\n"
        let usage = #"data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"# + "\n\n"
        let whole = relay(.chatCompletions, [Array((head + finish + usage).utf8)[...]])
        #expect(whole.result.sawTerminalEvent && whole.result.usage?.outputTokens == 1)
        // Without its usage the stream may have been cut: not whole.
        let cut = relay(.chatCompletions, [Array((head + finish).utf8)[...]])
        #expect(!cut.result.sawTerminalEvent)
        // Other dialects still need their terminal event.
        #expect(!relay(.responses, [Array(usage.utf8)[...]]).result.sawTerminalEvent)
    }

    @Test func truncatedStreamHasNoTerminal() {
        var blocks = Fixtures.anthropicStreamEvents
        blocks.removeLast(2)  // cut before message_delta
        let bytes = Fixtures.sse(blocks) + Array("event: content_block_delta\ndata: {\"ty".utf8)
        let r = relay(.messages, [bytes[...]])
        #expect(r.all == bytes)
        #expect(!r.result.sawTerminalEvent)
        // message_start's input counts are what we have; its output count (a placeholder) is not
        // one: the text relayed is the estimate.
        #expect(r.result.usage == Usage(inputTokens: 21, cachedInputTokens: 12055, cacheWriteTokens: 1843, outputTokens: 0))
        #expect(r.result.estimatedOutputTokens > 2)
        #expect(r.held == Array("event: content_block_delta\ndata: {\"ty".utf8))
    }

    @Test func anthropicDeltaCarriesCumulativeInput() {
        let blocks = [
            #"event: message_start\#ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-opus-4-1-20250805","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
            #"event: message_delta\#ndata: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":3012,"cache_creation_input_tokens":100,"cache_read_input_tokens":200,"output_tokens":89,"server_tool_use":{"web_search_requests":1}}}"#,
            #"event: message_stop\#ndata: {"type":"message_stop"}"#,
        ]
        let r = relay(.messages, [Fixtures.sse(blocks)[...]])
        // The search the delta reports is billed a fee of its own.
        #expect(r.result.usage == Usage(inputTokens: 3012, cachedInputTokens: 200, cacheWriteTokens: 100, outputTokens: 89,
                                        webSearches: 1))
        #expect(r.result.servedModel == "claude-opus-4-1-20250805")
    }

    @Test func errorEventsAreRecorded() {
        let anthropic = Fixtures.sse([
            Fixtures.anthropicStreamEvents[0],
            #"event: error\#ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ])
        let a = relay(.messages, [anthropic[...]])
        #expect(a.result.providerErrorMessage == "Overloaded")
        #expect(a.result.sawTerminalEvent && a.result.streamFailed)
        #expect(a.held.count > 0)
        let failed = Fixtures.sse([
            Fixtures.responsesStreamEvents[0],
            #"event: error\#ndata: {"type":"error","code":"server_error","message":"The server had an error","param":null,"sequence_number":1}"#,
            #"event: response.failed\#ndata: {"type":"response.failed","sequence_number":2,"response":{"id":"resp_1","object":"response","status":"failed","model":"gpt-4.1","error":{"code":"server_error","message":"The model failed"},"usage":null}}"#,
        ])
        let f = relay(.responses, [failed[...]])
        #expect(f.result.providerErrorMessage == "The model failed")
        #expect(f.result.sawTerminalEvent && f.result.usage == nil && f.result.streamFailed)
        let chat = Fixtures.sse([#"data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#,
                                 "data: [DONE]"])
        let c = relay(.chatCompletions, [chat[...]])
        #expect(c.result.providerErrorMessage?.hasPrefix("The server had an error") == true)
        #expect(c.result.sawTerminalEvent && c.result.streamFailed)
        // OpenAI's usual way: the error chunk, then the connection closes (no [DONE]).
        let closed = relay(.chatCompletions, [Fixtures.sse([#"data: {"error":{"message":"boom","type":"server_error"}}"#])[...]])
        #expect(closed.result.streamFailed && !closed.result.sawTerminalEvent && closed.result.providerErrorMessage == "boom")
        // A complete stream with `"error": null` in its events did not fail.
        let done = relay(.responses, [Fixtures.sse(Fixtures.responsesStreamEvents)[...]])
        #expect(done.result.sawTerminalEvent && !done.result.streamFailed)
        #expect(!relay(.chatCompletions, [Fixtures.sse(Fixtures.chatStreamEvents)[...]]).result.streamFailed)
    }

    static let scrubKey = "sk-proj-abc/123"
    static let scrubEscaped = #"\u0073\u006b-proj-abc\/123"#

    /// The relayed text, checked to hold no part of `scrubKey` that identifies it.
    static func scrubbed(_ r: Relay, _ label: String) -> String {
        let text = String(decoding: r.all, as: UTF8.self)
        #expect(!text.contains(scrubKey) && !text.contains(scrubEscaped) && !text.contains("proj-abc")
                && !text.contains(#"\u006b-proj"#), "\(label): \(text)")
        return text
    }

    @Test("a stream is relayed without the provider key, as written or escaped, in an error event or anywhere else, wherever the chunks split it")
    func errorEventsAreScrubbed() {
        let key = Self.scrubKey
        let quoted = "key \(key) and \(Self.scrubEscaped)"
        let cases: [(Endpoint, [String])] = [
            // Relayed as they come: chat error chunks (an object with a message, one without, a
            // bare string), a Responses `error` event.
            (.chatCompletions, [Fixtures.chatStreamEvents[0], #"data: {"error":{"message":"\#(quoted)","type":"server_error"}}"#,
                                "data: [DONE]"]),
            (.chatCompletions, [Fixtures.chatStreamEvents[0], #"data: {"error":{"detail":"\#(quoted)"}}"#, "data: [DONE]"]),
            (.chatCompletions, [Fixtures.chatStreamEvents[0], Fixtures.chatStreamEvents[1],
                                #"data: {"error":"\#(quoted)"}"#, "data: [DONE]"]),
            (.responses, [Fixtures.responsesStreamEvents[0],
                          #"event: error\#ndata: {"type":"error","code":"server_error","message":"\#(quoted)","sequence_number":1}"#]),
            // Held as the terminal event.
            (.messages, [Fixtures.anthropicStreamEvents[0],
                         #"event: error\#ndata: {"type":"error","error":{"type":"api_error","message":"\#(quoted)"}}"#]),
            (.responses, [Fixtures.responsesStreamEvents[0],
                          #"event: response.failed\#ndata: {"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"\#(quoted)"}}}"#]),
            // After the terminal event: relayed unread.
            (.chatCompletions, [Fixtures.chatStreamEvents[0], "data: [DONE]", #"data: {"error":{"message":"\#(quoted)"}}"#]),
            // Anywhere else in the stream: a comment, an `id`, an event that names no error.
            (.chatCompletions, [Fixtures.chatStreamEvents[0], ": proxy saw key \(key)\nid: \(Self.scrubEscaped)\n" + Fixtures.chatStreamEvents[1],
                                "data: [DONE]"]),
            (.chatCompletions, [Fixtures.chatStreamEvents[0], #"data: {"choices":[{"delta":{"content":"\#(quoted)"}}]}"#, "data: [DONE]"]),
            (.messages, [Fixtures.anthropicStreamEvents[0], #"event: ping\#ndata: {"type":"ping","note":"\#(quoted)"}"#,
                         Fixtures.anthropicStreamEvents.last!]),
        ]
        for (endpoint, events) in cases {
            let whole = Fixtures.sse(events)
            for cut in stride(from: 1, to: whole.count, by: 7) {
                let r = relay(endpoint, [whole[..<cut], whole[cut...]], providerKey: key)
                let text = Self.scrubbed(r, "\(endpoint) cut at \(cut)")
                #expect(text.components(separatedBy: CredentialScrub.replacement).count == 3, "\(endpoint) cut at \(cut)")
                // The events before the error pass unchanged, and the error is relayed once.
                #expect(text.hasPrefix(String(decoding: Fixtures.sse([events[0]]), as: UTF8.self)))
            }
            // Without a key to scrub, the same bytes pass as they came.
            #expect(relay(endpoint, [whole[...]]).all == whole)
        }
        // Events that hold no copy go out as they came.
        let plain = Fixtures.sse(Fixtures.chatStreamEvents)
        let r = relay(.chatCompletions, [plain[..<40], plain[40...]], providerKey: key)
        #expect(r.all == plain)
    }

    @Test("the stream check finds a copy as written, escaped or half escaped, across parts, and passes text that holds none")
    func streamCheckFindsCopies() {
        let key = Array(Self.scrubKey.utf8)
        func parts(_ texts: String...) -> ArraySlice<ByteBuffer> { ArraySlice(texts.map { ByteBuffer(string: $0) }) }
        #expect(CredentialScrub.mayHold(key, in: parts("a \(Self.scrubKey) b")))
        #expect(CredentialScrub.mayHold(key, in: parts("a \(Self.scrubEscaped) b")))
        #expect(CredentialScrub.mayHold(key, in: parts(#"a s\u006b-proj-abc/123"#)))
        #expect(CredentialScrub.mayHold(key, in: parts("a sk-pr", "oj-abc/123 b")))
        #expect(CredentialScrub.mayHold(key, in: parts("a s", "k-proj-abc/123 b")))
        #expect(!CredentialScrub.mayHold(key, in: parts(#"sessions \n \" \u00e9 sk-proj-abd"#)))
        #expect(!CredentialScrub.mayHold(key, in: parts("the event ends in sk-proj")))  // no part follows
        #expect(CredentialScrub.mayHold(Array("x".utf8), in: parts("ax")))
    }

    @Test("with a provider key, an event the stream ends inside is not relayed: it could end partway through the key")
    func unfinishedEventIsDropped() {
        let first = Fixtures.sse([Fixtures.chatStreamEvents[0]])
        let error = Array(#"data: {"error":{"message":"key \#(Self.scrubKey)"}}"#.utf8)
        for end in 1...error.count {
            let cut = first + error[..<end]  // the stream ends here, with no blank line
            let r = relay(.chatCompletions, [cut[...]], providerKey: Self.scrubKey)
            #expect(r.all == first, "ended after \(end) bytes")
            // Without a key, relayed as it came (clients discard it).
            #expect(relay(.chatCompletions, [cut[...]]).all == cut)
        }
    }

    @Test("the usage chunk the gateway asked for is dropped whole, even when it names an error")
    func strippedEventStaysDropped() {
        let usage = #"data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5},"error":null}"#
        let stream = Fixtures.sse([Fixtures.chatStreamEvents[0], usage, "data: [DONE]"])
        let r = relay(.chatCompletions, [stream[...]], strip: true, providerKey: Self.scrubKey)
        #expect(r.all == Fixtures.sse([Fixtures.chatStreamEvents[0], "data: [DONE]"]))
        #expect(r.result.usage?.outputTokens == 2)
    }

    @Test("a stream relayed unread past an event over bodyLimit is scrubbed as it passes, wherever the chunks split the key")
    func passthroughIsScrubbed() {
        // An event that has not ended at bodyLimit: the rest of the stream passes unread.
        let big = Array("data: ".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: ResponseMeter.bodyLimit + 1)
        let error = #"data: {"error":{"message":"key \#(Self.scrubKey) and \#(Self.scrubEscaped)"}}"#
        let tail = Array(("\n\n" + error + "\n\ndata: [DONE]\n\n").utf8)
        var meter = ResponseMeter(endpoint: .chatCompletions, stripInjectedUsage: false, providerKey: Self.scrubKey)
        meter.head(status: 200, contentType: "text/event-stream")
        var relayed: [UInt8] = []
        for part in meter.consume(ByteBuffer(bytes: big)) { relayed += part.readableBytesView }
        #expect(relayed.count > ResponseMeter.bodyLimit - 100, "passing through, a few bytes carried")
        // The tail in pieces of 5 bytes: every copy of the key is split between chunks.
        var at = 0
        while at < tail.count {
            for part in meter.consume(ByteBuffer(bytes: tail[at..<min(at + 5, tail.count)])) { relayed += part.readableBytesView }
            at += 5
        }
        for part in meter.finish().held { relayed += part.readableBytesView }
        #expect(meter.bytesForwarded == relayed.count)
        let scrubbed = #"data: {"error":{"message":"key [redacted] and [redacted]"}}"#
        #expect(relayed == big + Array(("\n\n" + scrubbed + "\n\ndata: [DONE]\n\n").utf8))

        // A stream that ends partway through a copy: that copy does not go, the rest does.
        var cut = ResponseMeter(endpoint: .chatCompletions, stripInjectedUsage: false, providerKey: Self.scrubKey)
        cut.head(status: 200, contentType: "text/event-stream")
        var out: [UInt8] = []
        for part in cut.consume(ByteBuffer(bytes: big + Array(" and sk-proj-ab".utf8))) { out += part.readableBytesView }
        for part in cut.finish().held { out += part.readableBytesView }
        #expect(out == big + Array(" and ".utf8))
    }

    @Test("the stream scrub carries only what could begin a copy of the key, and finds every copy across chunks")
    func streamScrubCarry() {
        let key = Self.scrubKey
        let text = Array("a \(key) b \(Self.scrubEscaped) c".utf8)
        for size in 1...text.count {
            var out: [UInt8] = [], carried: [UInt8] = []
            var at = 0
            while at < text.count {
                let (ready, carry) = CredentialScrub.scrub(stream: carried + text[at..<min(at + size, text.count)], secret: key, final: false)
                out += ready.readableBytesView
                carried = carry
                #expect(carried.count < key.utf8.count * 6)
                at += size
            }
            out += CredentialScrub.scrub(stream: carried, secret: key, final: true).ready.readableBytesView
            #expect(String(decoding: out, as: UTF8.self) == "a [redacted] b [redacted] c", "chunks of \(size)")
        }
    }

    @Test("the output estimate reads text fields written with whitespace around the colon, and only string values")
    func outputEstimateOfSpacedJSON() {
        let spaced = Fixtures.sse([#"data: {"choices": [{"delta": {"content": "Hello world"}}]}"#,
                                   #"data: {"choices": [{"delta": {"content" : "again"}}]}"#, "data: [DONE]"])
        #expect(relay(.chatCompletions, [spaced[...]]).result.estimatedOutputTokens == 4)  // 16 bytes
        // A reasoning chunk (OpenRouter, DeepSeek): empty content first, the text in `reasoning`.
        let reasoning = Fixtures.sse([#"data: {"choices":[{"delta":{"content":"","reasoning":"Let me think it over"}}]}"#])
        #expect(relay(.chatCompletions, [reasoning[...]]).result.estimatedOutputTokens == 5)  // 20 bytes
        let notText = Fixtures.sse([#"data: {"choices": [{"delta": {"content": null, "text": {"a": 1}}}]}"#])
        #expect(relay(.chatCompletions, [notText[...]]).result.estimatedOutputTokens == 0)
        let body = Array(#"{"choices": [{"message": {"role": "assistant", "content": "Hello there"}}]}"#.utf8)
        #expect(relay(.chatCompletions, [body[...]], contentType: "application/json").result.estimatedOutputTokens == 3)
    }

    @Test func azureFirstChunkWithoutModel() {
        var blocks = Fixtures.chatStreamEvents
        blocks.insert(#"data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}"#, at: 0)
        let bytes = Fixtures.sse(blocks)
        let r = relay(.chatCompletions, [bytes[...]], strip: true)
        #expect(r.result.servedModel == Fixtures.chatStreamModel)
        #expect(r.result.usage == Fixtures.chatStreamUsage)
        blocks.remove(at: Fixtures.chatStreamUsageIndex + 1)
        #expect(r.all == Fixtures.sse(blocks))  // the filter chunk has no usage: not stripped
    }

    @Test func eventsWithoutNamesAreReadByType() {
        let blocks = Fixtures.anthropicStreamEvents.map { String($0[$0.firstIndex(of: "\n")!...].dropFirst()) }
        let bytes = Fixtures.sse(blocks)
        let r = relay(.messages, [bytes[...]])
        #expect(r.result.usage == Fixtures.anthropicUsage && r.result.sawTerminalEvent)
        #expect(r.sentBytes.count == bytes.count - Fixtures.sse([blocks.last!]).count)
    }

    @Test func jsonBodyHoldsOnlyTheLastChunk() {
        let body = Array(Fixtures.chatBody.utf8)
        let chunks = stride(from: 0, to: body.count, by: 100).map { body[$0..<min($0 + 100, body.count)] }
        var meter = ResponseMeter(endpoint: .chatCompletions, stripInjectedUsage: true)
        meter.head(status: 200, contentType: "application/json")
        #expect(!meter.isStreaming)
        var previous: ArraySlice<UInt8>?
        for chunk in chunks {
            let out = meter.consume(ByteBuffer(chunk))
            #expect(out.map(\.bytes) == (previous.map { [Array($0)] } ?? []))
            _ = meter.consume(ByteBuffer())  // empty chunks change nothing
            previous = chunk
        }
        let (held, result) = meter.finish()
        #expect(held.map(\.bytes) == [Array(chunks.last!)])
        var expected = MeterResult(usage: Fixtures.chatUsage, servedModel: "o3-mini-2025-01-31", sawTerminalEvent: true)
        expected.servedTier = .some(nil)  // the fixture's `"service_tier":"default"`
        #expect(result == expected)
        // Split anywhere, the usage is the same.
        for cut in 0...body.count {
            let r = relay(.chatCompletions, [body[..<cut], body[cut...]], contentType: "application/json")
            #expect(r.all == body && r.result.usage == Fixtures.chatUsage)
        }
    }

    @Test func errorStatusIsBufferedEvenAsEventStream() {
        let body = Array(Fixtures.anthropicError.utf8)
        let r = relay(.messages, [body[..<10], body[10...]], status: 529, contentType: "text/event-stream")
        #expect(r.sent == [[], Array(body[..<10])])
        #expect(r.held == Array(body[10...]))
        #expect(r.result.providerErrorMessage == "model: claude-nope")
        #expect(r.result.usage == nil && !r.result.isStream)
    }

    @Test func hugeBodyIsRelayedButNotMetered() {
        let part = [UInt8](repeating: UInt8(ascii: " "), count: 1 << 20)
        var chunks: [ArraySlice<UInt8>] = [Array("{\"model\":\"m\",\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1},\"pad\":\"".utf8)[...]]
        for _ in 0..<17 { chunks.append(part[...]) }
        chunks.append(Array("\"}".utf8)[...])
        let r = relay(.chatCompletions, chunks, contentType: "application/json")
        #expect(r.all.count == chunks.reduce(0) { $0 + $1.count })
        #expect(r.result.usage == nil && r.result.bodyUnread)  // its usage came first, long gone
    }

    /// An embeddings batch past the limit: its usage, the document's last member, is in its tail.
    @Test func hugeBodyUsageIsReadFromItsTail() {
        let part = [UInt8](repeating: UInt8(ascii: "1"), count: 1 << 20)
        func body(ending: String) -> [ArraySlice<UInt8>] {
            var chunks: [ArraySlice<UInt8>] = [Array(#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"#.utf8)[...]]
            for _ in 0..<17 { chunks.append(part[...]) }
            chunks.append(Array(ending.utf8)[...])
            return chunks
        }
        let r = relay(.embeddings, body(ending: #"}],"model":"text-embedding-3-small", "usage": {"prompt_tokens": 400000, "total_tokens": 400000}}"#),
                      contentType: "application/json")
        #expect(r.result.bodyUnread)
        #expect(r.result.usage == Usage(inputTokens: 400_000))
        // A "usage" inside the last item, not the document's: no usage rather than a wrong one.
        let nested = relay(.embeddings, body(ending: #"}],"meta":{"usage":{"prompt_tokens":1}},"model":"m"}"#),
                           contentType: "application/json")
        #expect(nested.result.usage == nil)
    }

    @Test func endlessEventTurnsIntoPassThrough() {
        let start = Fixtures.sse([Fixtures.anthropicStreamEvents[0]])
        let part = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
        var chunks: [ArraySlice<UInt8>] = [start[...], Array("event: content_block_delta\ndata: ".utf8)[...]]
        for _ in 0..<17 { chunks.append(part[...]) }
        chunks.append(Fixtures.sse([Fixtures.anthropicStreamEvents.last!])[...])
        let r = relay(.messages, chunks)
        #expect(r.all == chunks.flatMap { $0 })
        #expect(r.held.isEmpty)
        #expect(r.sent.last == Array(chunks.last!))  // passed as it came
        #expect(r.result.usage?.inputTokens == 21 && !r.result.sawTerminalEvent)
    }

    @Test func contentTypeDecidesStreaming() {
        #expect(ResponseMeter.isEventStream("text/event-stream"))
        #expect(ResponseMeter.isEventStream("Text/Event-Stream ; charset=utf-8"))
        #expect(!ResponseMeter.isEventStream("application/json"))
        #expect(!ResponseMeter.isEventStream(nil))
        #expect(!ResponseMeter.isEventStream("text/event-streamx"))
    }

    @Test func finishWithoutBody() {
        var meter = ResponseMeter(endpoint: .chatCompletions, stripInjectedUsage: false)
        meter.head(status: 200, contentType: "text/event-stream")
        let (held, result) = meter.finish()
        #expect(held.isEmpty && result.usage == nil && !result.sawTerminalEvent && result.isStream)
    }

    @Test func scanKeysFindsOnlyUsageObjects() {
        func scan(_ s: String) -> (Bool, Bool) {
            Array(s.utf8).withUnsafeBytes { let r = StreamReading.scanKeys($0); return (r.usageObject, r.error) }
        }
        #expect(scan(#"{"usage":null}"#) == (false, false))
        #expect(scan(#"{"usage" : {"a":1}}"#) == (true, false))
        #expect(scan(#"{"error":{}}"#) == (false, true))
        #expect(scan(#"{"usage"#) == (false, false))
    }
}

@Suite struct StreamServedTierTests {
    func chunks(_ events: [String]) -> [ArraySlice<UInt8>] { events.map { ArraySlice(Array($0.utf8)) } }

    @Test("a stream's tier: the chat usage chunk's service_tier, the Responses terminal event's, Anthropic's cumulative usage.speed")
    func streams() {
        let chat = relay(.chatCompletions, chunks([
            "data: {\"id\":\"c\",\"model\":\"gpt-5\",\"service_tier\":\"priority\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
            "data: {\"id\":\"c\",\"model\":\"gpt-5\",\"service_tier\":\"priority\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
            "data: [DONE]\n\n",
        ]))
        #expect(chat.result.servedTier == .some("priority"))
        let responses = relay(.responses, chunks([
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"model\":\"o3\",\"service_tier\":\"flex\",\"usage\":{\"input_tokens\":3,\"output_tokens\":2}}}\n\n",
        ]))
        #expect(responses.result.servedTier == .some("flex"))
        let anthropic = relay(.messages, chunks([
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-opus-4-6\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1,\"service_tier\":\"standard\",\"speed\":\"fast\"}}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ]))
        #expect(anthropic.result.servedTier == .some("fast"))
        #expect(anthropic.result.usage?.outputTokens == 7)
        #expect(anthropic.result.servedGeo == nil)
        // Where it ran: message_start's usage says; message_delta's, without the field, keeps it.
        let usOnly = relay(.messages, chunks([
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-opus-4-6\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1,\"inference_geo\":\"us\"}}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ]))
        #expect(usOnly.result.servedGeo == "us")
        #expect(usOnly.result.usage?.outputTokens == 7)
        let plain = relay(.chatCompletions, chunks([
            "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n", "data: [DONE]\n\n",
        ]))
        #expect(plain.result.servedTier == .none)
    }
}

@Suite struct StreamWebSearchTests {
    @Test("a Responses stream's web and file searches are counted in its terminal event's output, once")
    func responsesStream() {
        let events = [
            "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"web_search_call\",\"id\":\"ws_1\"}}\n\n",
            "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"file_search_call\",\"id\":\"fs_1\"}}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"model\":\"gpt-5\",\"output\":[{\"type\":\"web_search_call\",\"id\":\"ws_1\"},{\"type\":\"file_search_call\",\"id\":\"fs_1\",\"queries\":[\"file_search_call\"]},{\"type\":\"message\",\"content\":[]}],\"usage\":{\"input_tokens\":3,\"output_tokens\":2}}}\n\n",
        ]
        let r = relay(.responses, events.map { ArraySlice(Array($0.utf8)) })
        #expect(r.result.usage == Usage(inputTokens: 3, outputTokens: 2, webSearches: 1, fileSearches: 1))
    }

    static func event(_ name: String, _ json: String) -> String { "event: \(name)\ndata: \(json)\n\n" }

    @Test("a Responses stream cut before its usage: the searches its completed events showed are billed with the estimate")
    func responsesStreamCut() {
        let events = [
            Self.event("response.created", #"{"type":"response.created","response":{"id":"r","model":"gpt-5","output":[],"usage":null}}"#),
            Self.event("response.web_search_call.in_progress", #"{"type":"response.web_search_call.in_progress","output_index":0,"item_id":"ws_1"}"#),
            Self.event("response.web_search_call.searching", #"{"type":"response.web_search_call.searching","output_index":0,"item_id":"ws_1"}"#),
            Self.event("response.web_search_call.completed", #"{"type":"response.web_search_call.completed","output_index":0,"item_id":"ws_1"}"#),
            Self.event("response.web_search_call.completed", #"{"type":"response.web_search_call.completed","output_index":1,"item_id":"ws_2"}"#),
            Self.event("response.file_search_call.completed", #"{"type":"response.file_search_call.completed","output_index":2,"item_id":"fs_1"}"#),
            // A search begun, not finished, when the stream broke off.
            Self.event("response.web_search_call.searching", #"{"type":"response.web_search_call.searching","output_index":3,"item_id":"ws_3"}"#),
            Self.event("response.output_text.delta", #"{"type":"response.output_text.delta","output_index":4,"delta":"Partial"}"#),
        ]
        let r = relay(.responses, events.map { ArraySlice(Array($0.utf8)) })
        #expect(!r.result.sawTerminalEvent && r.result.usage == nil)
        #expect(r.result.searchesSeen == SearchCalls(web: 2, file: 1))
        // Events without an `event:` line are known by their type.
        let nameless = relay(.responses, [ArraySlice(Array(
            "data: {\"type\":\"response.web_search_call.completed\",\"output_index\":0,\"item_id\":\"ws_1\"}\n\n".utf8))])
        #expect(nameless.result.searchesSeen == SearchCalls(web: 1))
        // The terminal event's count decides when it is higher (it counts every item).
        let whole = relay(.responses, (events.prefix(4) + [
            Self.event("response.completed", #"{"type":"response.completed","response":{"id":"r","model":"gpt-5","output":[{"type":"web_search_call","id":"ws_1"},{"type":"web_search_call","id":"ws_2"}],"usage":{"input_tokens":3,"output_tokens":2}}}"#),
        ]).map { ArraySlice(Array($0.utf8)) })
        #expect(whole.result.usage == Usage(inputTokens: 3, outputTokens: 2, webSearches: 2))
    }

    // Its usage may say no search yet: the results seen after it count.
    static let anthropicStart = event("message_start", #"{"type":"message_start","message":{"id":"m","model":"claude-sonnet-4-5","usage":{"input_tokens":40,"output_tokens":1,"server_tool_use":{"web_search_requests":0}}}}"#)

    static func searchBlocks(_ index: Int, content: String) -> [String] {
        [
            event("content_block_start", #"{"type":"content_block_start","index":\#(index),"content_block":{"type":"server_tool_use","id":"srvtoolu_\#(index)","name":"web_search","input":{}}}"#),
            event("content_block_delta", #"{"type":"content_block_delta","index":\#(index),"delta":{"type":"input_json_delta","partial_json":"{\"query\":\"news\"}"}}"#),
            event("content_block_stop", #"{"type":"content_block_stop","index":\#(index)}"#),
            event("content_block_start", #"{"type":"content_block_start","index":\#(index + 1),"content_block":{"content":\#(content),"type":"web_search_tool_result","tool_use_id":"srvtoolu_\#(index)"}}"#),
            event("content_block_stop", #"{"type":"content_block_stop","index":\#(index + 1)}"#),
        ]
    }

    @Test("an Anthropic stream cut before message_delta: its web search results are billed; an error result is not")
    func anthropicStreamCut() {
        let results = #"[{"type":"web_search_result","title":"A \"quoted\" {title}","url":"https://example.com","encrypted_content":"ZmFrZQ==","page_age":null}]"#
        let error = #"{"type":"web_search_tool_result_error","error_code":"max_uses_exceeded"}"#
        let cut = [Self.anthropicStart] + Self.searchBlocks(0, content: results) + Self.searchBlocks(2, content: "[]")
            + Self.searchBlocks(4, content: error)
            + [Self.event("content_block_start", #"{"type":"content_block_start","index":6,"content_block":{"type":"text","text":"web_search_tool_result"}}"#)]
        let r = relay(.messages, cut.map { ArraySlice(Array($0.utf8)) })
        #expect(!r.result.sawTerminalEvent)
        #expect(r.result.searchesSeen == SearchCalls(web: 2))
        #expect(r.result.usage == Usage(inputTokens: 40, outputTokens: 0, webSearches: 2))
        // Whole, message_delta's count decides when it is higher.
        let whole = relay(.messages, (Array(cut.prefix(6)) + [
            Self.event("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9,"server_tool_use":{"web_search_requests":3}}}"#),
            Self.event("message_stop", #"{"type":"message_stop"}"#),
        ]).map { ArraySlice(Array($0.utf8)) })
        #expect(whole.result.usage == Usage(inputTokens: 40, outputTokens: 9, webSearches: 3))
    }
}

import NIOCore
import Testing
@testable import Metering

@Suite struct OutputCapTests {
    struct Outcome {
        var text: String
        var requested: Int?
        var applied: Int
        var changed: Bool
        var peek: RequestPeek
    }

    /// Caps `text` for `endpoint`, then (optionally) injects include_usage, checking on the way
    /// that the returned peek is exactly what reading the new body gives, that an unchanged
    /// body is the very same bytes, and that the other order of the two rewrites agrees.
    func cap(_ text: String, _ cap: Int, _ endpoint: Endpoint, includeUsage: Bool = false, compatibleServer: Bool = false,
             sourceLocation: SourceLocation = #_sourceLocation) throws -> Outcome {
        // A buffer whose readable bytes start past index 0, as a request body's slice may.
        var body = ByteBuffer(string: "junk")
        body.moveReaderIndex(forwardBy: 4)
        body.writeString(text)
        let peek = try RequestPeek(body: body)
        let r = peek.withOutputCap(cap, endpoint: endpoint, body: body, compatibleServer: compatibleServer)
        #expect(try RequestPeek(body: r.body) == r.peek, "returned peek matches the new body", sourceLocation: sourceLocation)
        #expect(r.changed == (r.body.bytes != Array(text.utf8)), sourceLocation: sourceLocation)
        #expect(r.requested == peek.requestedOutput(on: endpoint), sourceLocation: sourceLocation)
        #expect(peek.exceedsCap(cap, endpoint: endpoint) == ((r.requested ?? 0) > cap), sourceLocation: sourceLocation)
        var out = r.body
        if includeUsage {
            out = r.peek.withIncludeUsage(r.body)
            let final = try RequestPeek(body: out)
            #expect(final.includeUsage == true, sourceLocation: sourceLocation)
            // Include usage first, re-peek, then cap: the same fields reach the provider.
            let first = peek.withIncludeUsage(body)
            let other = try RequestPeek(body: first).withOutputCap(cap, endpoint: endpoint, body: first,
                                                                   compatibleServer: compatibleServer)
            #expect(other.requested == r.requested && other.applied == r.applied, sourceLocation: sourceLocation)
            #expect(other.peek.maxTokens == final.maxTokens && other.peek.maxCompletionTokens == final.maxCompletionTokens
                    && other.peek.maxOutputTokens == final.maxOutputTokens && other.peek.includeUsage == true,
                    sourceLocation: sourceLocation)
        }
        return Outcome(text: String(decoding: out.bytes, as: UTF8.self), requested: r.requested,
                       applied: r.applied, changed: r.changed, peek: r.peek)
    }

    enum Case: CaseIterable { case absent, below, equal, above }

    /// A streaming body for each endpoint, with its output field (or none) at the end.
    static func body(_ endpoint: Endpoint, _ member: String) -> String {
        switch endpoint {
        case .chatCompletions: return #"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true"# + member + "}"
        case .completions: return #"{"model":"gpt-3.5-turbo-instruct","prompt":"hi","stream":true"# + member + "}"
        case .responses: return #"{"model":"o4-mini","input":"hi","stream":true"# + member + "}"
        case .messages: return #"{"model":"claude-haiku","messages":[{"role":"user","content":"hi"}],"stream":true"# + member + "}"
        case .embeddings: return #"{"model":"text-embedding-3-small","input":"hi""# + member + "}"
        case .countTokens: return #"{"model":"claude-haiku","messages":[]"# + member + "}"
        }
    }

    static func field(_ endpoint: Endpoint) -> String {
        switch endpoint {
        case .chatCompletions: return "max_completion_tokens"
        case .responses: return "max_output_tokens"
        case .completions, .messages, .embeddings, .countTokens: return "max_tokens"
        }
    }

    @Test(arguments: Endpoint.allCases, Case.allCases)
    func matrix(endpoint: Endpoint, kind: Case) throws {
        let limit = 1000
        let field = Self.field(endpoint)
        let value: Int? = switch kind {
        case .absent: nil
        case .below: 999
        case .equal: 1000
        case .above: 5000
        }
        let input = Self.body(endpoint, value.map { #","\#(field)":\#($0)"# } ?? "")
        let hasOutput = endpoint != .embeddings && endpoint != .countTokens
        var expected = input
        var requested: Int? = hasOutput ? value : nil
        var applied = hasOutput ? min(value ?? limit, limit) : 0
        switch kind {
        case .absent:
            requested = nil
            switch endpoint {
            case .chatCompletions, .responses:
                expected = "{" + #""\#(field)":1000,"# + input.dropFirst()
            case .completions: applied = RequestPeek.completionsDefaultMaxTokens
            case .messages, .embeddings, .countTokens: break
            }
        case .above where hasOutput:
            expected = Self.body(endpoint, #","\#(field)":1000"#)
        default: break
        }
        for includeUsage in [false, true] {
            let r = try cap(input, limit, endpoint, includeUsage: includeUsage)
            let want = includeUsage ? #"{"stream_options":{"include_usage":true},"# + expected.dropFirst() : expected
            #expect(r.text == want, "\(endpoint) \(kind) include_usage: \(includeUsage)")
            #expect(r.requested == requested && r.applied == applied, "\(endpoint) \(kind)")
            #expect(r.changed == (expected != input))
        }
        let peek = try RequestPeek(body: Array(input.utf8))
        #expect(peek.exceedsCap(limit, endpoint: endpoint) == (hasOutput && kind == .above))
        #expect(peek.exceedsCap(limit) == (kind == .above))
    }

    @Test func chatClampsBothFields() throws {
        var r = try cap(#"{"max_tokens":5000,"model":"m","max_completion_tokens":2000}"#, 1000, .chatCompletions)
        #expect(r.text == #"{"max_tokens":1000,"model":"m","max_completion_tokens":1000}"#)
        #expect(r.requested == 5000 && r.applied == 1000)
        r = try cap(#"{"max_completion_tokens":20000,"model":"m","max_tokens":3}"#, 1000, .chatCompletions, includeUsage: true)
        #expect(r.text == #"{"stream_options":{"include_usage":true},"max_completion_tokens":1000,"model":"m","max_tokens":3}"#)
        #expect(r.requested == 20000 && r.applied == 1000)
        // max_tokens alone is honoured: nothing is added beside it.
        r = try cap(#"{"model":"m","max_tokens":10}"#, 1000, .chatCompletions)
        #expect(!r.changed && r.requested == 10 && r.applied == 10)
        r = try cap(#"{"model":"m","max_tokens":10,"max_completion_tokens":3000}"#, 1000, .chatCompletions)
        #expect(r.text == #"{"model":"m","max_tokens":10,"max_completion_tokens":1000}"#)
        // A field another endpoint reads is not this one's cap.
        r = try cap(#"{"model":"m","max_output_tokens":5000}"#, 1000, .chatCompletions)
        #expect(r.text == #"{"max_completion_tokens":1000,"model":"m","max_output_tokens":5000}"#)
        #expect(r.requested == nil)
        let peek = try RequestPeek(body: Array(#"{"max_output_tokens":5000}"#.utf8))
        #expect(!peek.exceedsCap(1000, endpoint: .chatCompletions) && peek.exceedsCap(1000, endpoint: .responses))
        #expect(peek.exceedsCap(1000))
    }

    @Test func nestedCapsAreNotTouched() throws {
        let body = #"""
        {"model":"m","messages":[{"role":"user","content":"\"max_tokens\":99999","max_tokens":99999}],"metadata":{"max_completion_tokens":99999,"user_id":"u"},"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"max_tokens":{"type":"integer","maximum":99999}}}}}],"text":{"max_output_tokens":99999}}
        """#
        let chat = try cap(body, 100, .chatCompletions, includeUsage: true)
        #expect(chat.text == #"{"stream_options":{"include_usage":true},"max_completion_tokens":100,"# + body.dropFirst())
        let responses = try cap(body, 100, .responses)
        #expect(responses.text == #"{"max_output_tokens":100,"# + body.dropFirst())
        let messages = try cap(body, 100, .messages)
        #expect(!messages.changed && messages.requested == nil && messages.applied == 100)
        let completions = try cap(body, 100, .completions)
        #expect(!completions.changed && completions.applied == 16)
    }

    @Test func whitespaceAndUnicodeAroundTheNumber() throws {
        let before = "{\n  \"model\" : \"m\",\n  \"messages\" : [ {\"content\": \"h\u{e9}llo 😀 日本語 \\\"max_tokens\\\": 1\"} ] ,\n  \"max_tokens\"   :\t"
        let after = "  \n,\"stream\":true}\n"
        let r = try cap(before + "5000" + after, 1024, .messages, includeUsage: true)
        #expect(r.text == "{\"stream_options\":{\"include_usage\":true}," + before.dropFirst() + "1024" + after)
        let plain = try cap(before + "5000" + after, 1024, .messages)
        #expect(plain.text == before + "1024" + after)
        // Inserting after a '{' that follows whitespace, before a spaced first member.
        let spaced = try cap(" \n{ \"model\":\"m\" } ", 7, .responses)
        #expect(spaced.text == " \n{\"max_output_tokens\":7, \"model\":\"m\" } ")
        let unicode = try cap(#"{"input":"ü→😀"}"#, 7, .responses, includeUsage: true)
        #expect(unicode.text == #"{"stream_options":{"include_usage":true},"max_output_tokens":7,"input":"ü→😀"}"#)
    }

    @Test func emptyObject() throws {
        #expect(try cap("{}", 5, .chatCompletions).text == #"{"max_completion_tokens":5}"#)
        #expect(try cap("{ }", 5, .responses).text == #"{"max_output_tokens":5 }"#)
        #expect(try cap("{}", 5, .chatCompletions, includeUsage: true).text
                == #"{"stream_options":{"include_usage":true},"max_completion_tokens":5}"#)
        #expect(try cap("{}", 5, .messages).text == "{}")
    }

    @Test func nullCapsAreReplacedNotDuplicated() throws {
        var r = try cap(#"{"prompt":"x","max_tokens":null}"#, 10, .completions)
        #expect(r.text == #"{"prompt":"x","max_tokens":10}"#)
        #expect(r.requested == nil && r.applied == 10)
        r = try cap(#"{"model":"m","max_completion_tokens" : null ,"stream":true}"#, 300, .chatCompletions, includeUsage: true)
        #expect(r.text == #"{"stream_options":{"include_usage":true},"model":"m","max_completion_tokens" : 300 ,"stream":true}"#)
        r = try cap(#"{"model":"m","max_tokens":null}"#, 300, .chatCompletions)
        #expect(r.text == #"{"max_completion_tokens":300,"model":"m","max_tokens":null}"#)
        r = try cap(#"{"model":"m","max_tokens":null}"#, 300, .messages)
        #expect(!r.changed && r.requested == nil)
        r = try cap(#"{"max_output_tokens":null}"#, 300, .responses)
        #expect(r.text == #"{"max_output_tokens":300}"#)
    }

    @Test func numberNotations() throws {
        #expect(try cap(#"{"max_tokens":1e5}"#, 4096, .messages).text == #"{"max_tokens":4096}"#)
        #expect(try cap(#"{"max_tokens":5E+3,"x":1}"#, 4096, .messages).text == #"{"max_tokens":4096,"x":1}"#)
        #expect(try cap(#"{"max_tokens":12500e-1}"#, 1000, .completions).text == #"{"max_tokens":1000}"#)
        var r = try cap(#"{"max_tokens":4096.000}"#, 4096, .messages)
        #expect(!r.changed && r.requested == 4096 && r.text == #"{"max_tokens":4096.000}"#)
        r = try cap(#"{"max_tokens":-0}"#, 4096, .messages)
        #expect(!r.changed && r.applied == 0)
        // A shorter or longer number than the original shifts everything after it.
        r = try cap(#"{"max_tokens":1000000000,"stream_options":{"include_usage":false}}"#, 7, .completions, includeUsage: true)
        #expect(r.text == #"{"max_tokens":7,"stream_options":{"include_usage":true}}"#)
        r = try cap(#"{"max_tokens":90,"stream_options":{"x":1}}"#, 8, .completions, includeUsage: true)
        #expect(r.text == #"{"max_tokens":8,"stream_options":{"include_usage":true,"x":1}}"#)
    }

    @Test func escapedKeyIsTheSameField() throws {
        let r = try cap(#"{"max\u005ftokens":5000}"#, 10, .messages)
        #expect(r.text == #"{"max\u005ftokens":10}"#)
    }

    @Test func completionsDefault() throws {
        // Absent, completions writes at most 16 tokens: below the cap, nothing to add.
        var r = try cap(#"{"prompt":"x"}"#, 16, .completions)
        #expect(!r.changed && r.requested == nil && r.applied == 16)
        r = try cap(#"{"prompt":"x"}"#, 15, .completions)
        #expect(r.text == #"{"max_tokens":15,"prompt":"x"}"# && r.applied == 15)
    }

    @Test func noOutputEndpoints() throws {
        for endpoint in [Endpoint.embeddings, .countTokens] {
            let r = try cap(#"{"model":"m","max_tokens":99999}"#, 1, endpoint, includeUsage: true)
            #expect(r.requested == nil && r.applied == 0)
            #expect(r.text == #"{"stream_options":{"include_usage":true},"model":"m","max_tokens":99999}"#)
        }
    }

    @Test func unchangedBodyIsTheSameBuffer() throws {
        let body = ByteBuffer(string: #"{"model":"m","max_tokens":10}"#)
        let r = try RequestPeek(body: body).withOutputCap(100, endpoint: .messages, body: body)
        #expect(!r.changed && r.body == body && r.body.readerIndex == body.readerIndex)
    }
    @Test("a clamp of max_tokens lowers an extended-thinking budget in proportion, to at least 1,024 and below the cap")
    func thinkingBudget() throws {
        func body(_ maxTokens: Int, _ budget: Int, type: String = "enabled", thinkingFirst: Bool = false) -> String {
            let thinking = #""thinking":{"type":"\#(type)","budget_tokens":\#(budget)}"#
            let max = #""max_tokens":\#(maxTokens)"#
            return #"{"model":"claude-sonnet-4-5","# + (thinkingFirst ? thinking + "," + max : max + "," + thinking)
                + #","messages":[{"role":"user","content":"hi"}]}"#
        }
        // 10,000 of 16,000 under a cap of 4,096: 2,560 (the same share), whichever field comes first.
        for first in [false, true] {
            let r = try cap(body(16_000, 10_000, thinkingFirst: first), 4_096, .messages)
            #expect(r.text == body(4_096, 2_560, thinkingFirst: first))
            #expect(r.peek.thinkingBudget == 2_560 && r.peek.maxTokens == 4_096 && r.applied == 4_096)
        }
        // Monotonic: a budget just under the cap goes down too (it would leave the answer 1 token).
        #expect(try cap(body(16_000, 2_047), 2_048, .messages).text == body(2_048, 1_024))
        #expect(try cap(body(16_000, 2_048), 2_048, .messages).text == body(2_048, 1_024))
        // Never below Anthropic's least budget, never at or above max_tokens (a client's budget
        // at or above its own max_tokens included: the provider would refuse that one anyway).
        #expect(try cap(body(30_000, 2_100), 2_048, .messages).text == body(2_048, 1_024))
        #expect(try cap(body(4_000, 9_000), 2_048, .messages).text == body(2_048, 2_047))
        // Left alone: a limit not clamped, a budget already at the least, adaptive thinking, a
        // budget below 1,024 (the provider's to refuse), interleaved thinking (below).
        #expect(try cap(body(1_800, 1_500), 2_048, .messages).changed == false)
        #expect(try cap(body(16_000, 1_024), 2_048, .messages).text == body(2_048, 1_024))
        #expect(try cap(body(16_000, 10_000, type: "adaptive"), 2_048, .messages).text == body(2_048, 10_000, type: "adaptive"))
        #expect(try cap(body(16_000, 500), 2_048, .messages).text == body(2_048, 500))
        // thinking as null, an empty object, not an object, or a budget that is not a whole number:
        // read as absent, relayed as sent (the provider judges them).
        for thinking in ["null", "{}", #""on""#, #"{"type":"enabled","budget_tokens":"many"}"#] {
            let text = #"{"model":"claude-sonnet-4-5","max_tokens":16000,"thinking":\#(thinking),"messages":[]}"#
            #expect(try cap(text, 2_048, .messages).text == text.replacingOccurrences(of: "16000", with: "2048"))
        }
        let text = body(16_000, 10_000)
        let peek = try RequestPeek(body: ByteBuffer(string: text))
        let interleaved = peek.withOutputCap(2_048, endpoint: .messages, body: ByteBuffer(string: text), interleavedThinking: true)
        #expect(String(buffer: interleaved.body) == body(2_048, 10_000) && interleaved.thinking == .fits)
        #expect(peek.thinkingUnderCap(1_024, on: .messages, interleaved: true) == .fits)
        #expect(peek.thinkingUnderCap(2_048, on: .countTokens, interleaved: false) == .fits)
        // No room for 1,024 below max_tokens: the caller refuses the call.
        #expect(peek.thinkingUnderCap(1_024, on: .messages, interleaved: false) == .cannotFit)
        #expect(peek.withOutputCap(1_024, endpoint: .messages, body: ByteBuffer(string: text)).thinking == .cannotFit)
        #expect(peek.thinkingUnderCap(1_025, on: .messages, interleaved: false) == .lowered(to: 1_024))
    }

    @Test("for an OpenAI-compatible server the limit goes in max_tokens, the field they all read")
    func compatibleServer() throws {
        func capped(_ text: String, _ endpoint: Endpoint = .chatCompletions) throws -> (String, Int) {
            var body = ByteBuffer(string: "junk")
            body.moveReaderIndex(forwardBy: 4)
            body.writeString(text)
            let peek = try RequestPeek(body: body)
            let r = peek.withOutputCap(1000, endpoint: endpoint, body: body, compatibleServer: true)
            #expect(try RequestPeek(body: r.body) == r.peek, "returned peek matches the new body")
            return (String(buffer: r.body), r.applied)
        }
        let chat = #"{"model":"llama3","messages":[]"#
        // No limit: the cap goes in max_tokens (Ollama and LM Studio ignore max_completion_tokens).
        #expect(try capped(chat + "}") == (#"{"max_tokens":1000,"model":"llama3","messages":[]}"#, 1000))
        // The client's max_completion_tokens, clamped or not, is copied into max_tokens.
        #expect(try capped(chat + #","max_completion_tokens":5000}"#)
                == (#"{"max_tokens":1000,"model":"llama3","messages":[],"max_completion_tokens":1000}"#, 1000))
        #expect(try capped(chat + #","max_completion_tokens":50}"#)
                == (#"{"max_tokens":50,"model":"llama3","messages":[],"max_completion_tokens":50}"#, 50))
        #expect(try capped(chat + #","max_completion_tokens":50,"max_tokens":null}"#)
                == (#"{"model":"llama3","messages":[],"max_completion_tokens":50,"max_tokens":50}"#, 50))
        // A max_tokens of the client's is clamped as for OpenAI.
        #expect(try capped(chat + #","max_tokens":5000}"#) == (chat + #","max_tokens":1000}"#, 1000))
        #expect(try capped(chat + #","max_tokens":20}"#) == (chat + #","max_tokens":20}"#, 20))
        // With include_usage added too (two members at the object's start), in either order.
        let stream = try cap(#"{"model":"llama3","stream":true,"messages":[]}"#, 1000, .chatCompletions,
                             includeUsage: true, compatibleServer: true)
        #expect(stream.peek.maxTokens == 1000 && stream.applied == 1000 && stream.text.contains(#""max_tokens":1000,"#))
        #expect(try capped("{}") == (#"{"max_tokens":1000}"#, 1000))
        // Legacy completions without max_tokens are unbounded there, not OpenAI's 16.
        let completion = #"{"model":"llama3","prompt":"hi"}"#
        #expect(try capped(completion, .completions) == (#"{"max_tokens":1000,"model":"llama3","prompt":"hi"}"#, 1000))
    }
}

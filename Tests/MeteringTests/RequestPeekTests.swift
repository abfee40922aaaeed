import NIOCore
import Testing
@testable import Metering

@Suite struct RequestPeekTests {
    func peek(_ text: String) throws(RequestPeekError) -> RequestPeek { try RequestPeek(body: Array(text.utf8)) }

    @Test("withModel replaces the model and keeps every other byte")
    func withModel() throws {
        let text = #"{ "messages": [], "model" : "gpt-4o",  "stream":true }"#
        let body = ByteBuffer(string: text)
        let peek = try RequestPeek(body: body)
        let out = try #require(peek.withModel("o4-\"mini\"", body: body))
        #expect(String(buffer: out) == #"{ "messages": [], "model" : "o4-\"mini\"",  "stream":true }"#)
        #expect(try RequestPeek(body: out).model == "o4-\"mini\"")
        let noModel = ByteBuffer(string: #"{"messages":[]}"#)
        #expect(try RequestPeek(body: noModel).withModel("x", body: noModel) == nil)
    }

    @Test("strings must be well-formed UTF-8: valid multi-byte text passes, broken sequences are refused")
    func utf8Validation() throws {
        func body(_ middle: [UInt8]) -> [UInt8] {
            Array(#"{"model":"m","messages":[{"role":"user","content":"a"#.utf8) + middle + Array(#"b"}]}"#.utf8)
        }
        for valid: [UInt8] in [[0xC3, 0xA9], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98, 0x80], [0xEF, 0xBF, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF]] {
            #expect(throws: Never.self) { try RequestPeek(body: body(valid)) }
        }
        let invalid: [[UInt8]] = [
            [0xC3, 0x28],              // bad continuation
            [0xC0, 0xAF],              // overlong '/'
            [0xE0, 0x80, 0xAF],        // overlong
            [0xED, 0xA0, 0x80],        // UTF-16 surrogate
            [0xF4, 0x90, 0x80, 0x80],  // past U+10FFFF
            [0xFF], [0x80], [0xE2, 0x82],
        ]
        for bad in invalid {
            #expect(throws: RequestPeekError.self, "\(bad)") { try RequestPeek(body: body(bad)) }
        }
    }

    func message(_ text: String) -> String? {
        do { _ = try peek(text); return nil } catch { return error.message }
    }

    @Test func readsTheFieldsAdmissionNeeds() throws {
        let body = #"""
        {
          "model": "gpt-4o-mini",
          "messages": [{"role": "user", "content": "Hi \"model\": \"x\" {"}, {"role": "tool", "content": [1, 2.5e-3, -0, true, null]}],
          "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"model": {"type": "string"}}}}}],
          "stream": true,
          "stream_options": {"include_usage": false},
          "max_completion_tokens": 1e3,
          "user": "user-\u00e9\ud83d\ude00",
          "metadata": {"user_id": "u-42", "other": {"deep": [[]]}}
        }
        """#
        let p = try peek(body)
        #expect(p.model == "gpt-4o-mini")
        #expect(p.stream)
        #expect(p.includeUsage == false)
        #expect(p.maxCompletionTokens == 1000)
        #expect(p.maxTokens == nil)
        #expect(p.outputCap == 1000)
        #expect(p.user == "user-é😀")
        #expect(p.metadataUserID == "u-42")
        #expect(p.bodyBytes == body.utf8.count)
        #expect(try p.requireModel() == "gpt-4o-mini")
    }

    @Test("n and best_of multiply the answers generated where the endpoint has them, and a list of prompts multiplies them again")
    func generatedAnswers() throws {
        let p = try peek(#"{"model":"m","n":4,"best_of":6}"#)
        #expect(p.generatedAnswers(on: .chatCompletions) == 4)
        #expect(p.generatedAnswers(on: .completions) == 6)
        #expect(p.generatedAnswers(on: .responses) == 1 && p.generatedAnswers(on: .messages) == 1)
        for absent in [#""n":null"#, #""n":0"#] {
            let q = try peek("{\"model\":\"m\",\(absent)}")
            #expect(q.generatedAnswers(on: .chatCompletions) == 1, "\(absent)")
        }
        // A string or a fraction would read as one answer and reserve too little at a server that
        // coerces it (vLLM's pydantic turns "50" into 50): refused, as max_tokens's are.
        #expect(message(#"{"model":"m","n":"50"}"#) == "field 'n' must be a non-negative integer")
        #expect(message(#"{"model":"m","n":2.5}"#) == "field 'n' must be a non-negative integer")
        #expect(message(#"{"model":"m","n":-1}"#) == "field 'n' must be a non-negative integer")
        #expect(message(#"{"model":"m","best_of":"3"}"#) == "field 'best_of' must be a non-negative integer")
        #expect(message(#"{"model":"m","n":1,"n":2}"#) == "field 'n' appears more than once")
        // Legacy completions: one completion per prompt of a list, each n / best_of times.
        let prompts = try peek(#"{"model":"m","prompt":["a","b",  "c"],"n":2}"#)
        #expect(prompts.prompts == 3 && prompts.generatedAnswers(on: .completions) == 6)
        #expect(prompts.generatedAnswers(on: .chatCompletions) == 2)
        #expect(try peek(#"{"model":"m","prompt":[[1,2],[3]],"best_of":3}"#).generatedAnswers(on: .completions) == 6)
        #expect(try peek(#"{"model":"m","prompt":[101, 102, 103]}"#).generatedAnswers(on: .completions) == 1)
        #expect(try peek(#"{"model":"m","prompt":"one"}"#).generatedAnswers(on: .completions) == 1)
        #expect(try peek(#"{"model":"m","prompt":[]}"#).generatedAnswers(on: .completions) == 1)
        #expect(try peek(#"{"model":"m","prompt":{"id":"pmpt_1"}}"#).prompts == nil)
        #expect(message(#"{"model":"m","prompt":["a",]}"#)?.hasPrefix("malformed JSON") == true)
        #expect(Endpoint.chatCompletions.outputReserve(applied: 50, answers: 3) == 150)
        #expect(Endpoint.chatCompletions.outputReserve(applied: nil, answers: 2) == 2 * Endpoint.defaultOutputReserve)
        #expect(Endpoint.embeddings.outputReserve(applied: nil, answers: 5) == 0)
    }

    @Test("a web search tool reserves its max_uses (or the Responses API's max_tool_calls) searches, else ten; other tools and token counts none")
    func webSearchTools() throws {
        func reserved(_ text: String, on endpoint: Endpoint = .responses) throws -> Int {
            try peek(text).reservedWebSearches(on: endpoint)
        }
        let anthropic = #"{"model":"claude","tools":[{"name":"get_weather","input_schema":{"type":"object"}},{"type":"web_search_20250305","name":"web_search","max_uses":5}]}"#
        #expect(try reserved(anthropic, on: .messages) == 5)
        #expect(try reserved(anthropic, on: .countTokens) == 0)
        let unlimited = #"{"model":"gpt-5","tools":[{"type":"web_search"}],"input":"news"}"#
        #expect(try reserved(unlimited) == RequestPeek.searchesWithoutLimit)
        #expect(try reserved(#"{"model":"gpt-5","max_tool_calls":3,"tools":[{"type":"web_search_preview"}]}"#) == 3)
        #expect(try reserved(#"{"model":"gpt-5","max_tool_calls":30,"tools":[{"type":"web_search_preview"}]}"#) == 30)
        #expect(try reserved(#"{"model":"claude","tools":[{"type":"web_search_20250305","max_uses":20}],"max_tool_calls":2}"#) == 2)
        // max_tool_calls is the Responses API's: elsewhere a provider may ignore it.
        #expect(try reserved(#"{"model":"claude","tools":[{"type":"web_search_20250305"}],"max_tool_calls":0}"#, on: .messages) == 10)
        // Two search tools: their limits add up; one without a limit has none.
        #expect(try reserved(#"{"model":"m","tools":[{"type":"web_search","max_uses":2},{"max_uses":3,"type":"web_search_2025_08_26"}]}"#) == 5)
        #expect(try reserved(#"{"model":"m","tools":[{"type":"web_search","max_uses":2},{"type":"web_search"}]}"#) == 10)
        // Escaped, a function tool named web_search, no tools, a tool list that is not one.
        let escaped = #"{"model":"m","tools":[{"type":"web\u005fsearch"}]}"#
        #expect(escaped.contains(#"\u005f"#))
        #expect(try reserved(escaped) == 10)
        #expect(try reserved(#"{"model":"m","tools":[{"type":"function","function":{"name":"web_search"}}]}"#) == 0)
        #expect(try reserved(#"{"model":"m","max_tool_calls":3}"#) == 0)
        #expect(try reserved(#"{"model":"m","tools":null}"#) == 0)
        #expect(try reserved(#"{"model":"m","tools":{"type":"web_search"}}"#) == 0)
        // Which web search tools: the older preview one (its own fee), a current one, or both.
        let previewOnly = try peek(#"{"model":"m","tools":[{"type":"web_search_preview","search_context_size":"low"}]}"#)
        #expect(previewOnly.webSearchPreviewTool && !previewOnly.webSearchCurrentTool)
        let both = try peek(#"{"model":"m","tools":[{"type":"web_search_preview_2025_03_11"},{"type":"web_search"}]}"#)
        #expect(both.webSearchPreviewTool && both.webSearchCurrentTool)
        let current = try peek(#"{"model":"claude","tools":[{"type":"web_search_20250305","name":"web_search"}]}"#)
        #expect(!current.webSearchPreviewTool && current.webSearchCurrentTool)
        // The file search tool: max_tool_calls, else ten, on the Responses API only.
        func files(_ text: String, on endpoint: Endpoint = .responses) throws -> Int {
            try peek(text).reservedFileSearches(on: endpoint)
        }
        #expect(try files(#"{"model":"m","tools":[{"type":"file_search","vector_store_ids":["vs_1"],"max_num_results":5}]}"#) == 10)
        #expect(try files(#"{"model":"m","max_tool_calls":2,"tools":[{"type":"web_search"},{"type":"file_search"}]}"#) == 2)
        #expect(try reserved(#"{"model":"m","max_tool_calls":2,"tools":[{"type":"web_search"},{"type":"file_search"}]}"#) == 2)
        // With both tools, max_tool_calls bounds their calls together (the Responses API's only).
        #expect(try peek(#"{"model":"m","max_tool_calls":2,"tools":[{"type":"web_search"},{"type":"file_search"}]}"#)
                .sharedToolCallLimit(on: .responses) == 2)
        #expect(try peek(#"{"model":"m","max_tool_calls":2,"tools":[{"type":"file_search"}]}"#).sharedToolCallLimit(on: .responses) == nil)
        #expect(try peek(#"{"model":"m","tools":[{"type":"web_search"},{"type":"file_search"}]}"#).sharedToolCallLimit(on: .responses) == nil)
        #expect(try peek(#"{"model":"m","max_tool_calls":2,"tools":[{"type":"web_search"},{"type":"file_search"}]}"#)
                .sharedToolCallLimit(on: .chatCompletions) == nil)
        #expect(try files(#"{"model":"m","tools":[{"type":"file_search"}]}"#, on: .chatCompletions) == 0)
        #expect(try files(#"{"model":"m","tools":[{"type":"function","name":"file_search"}]}"#) == 0)
        #expect(try files(#"{"model":"m","tools":[{"type":"web_search"}]}"#) == 0)
        // The image generation tool is seen beside the others.
        #expect(try peek(#"{"model":"m","tools":[{"type":"web_search"},{"type":"image_generation","size":"1024x1024"}]}"#).imageGenerationTool)
        #expect(try !peek(#"{"model":"m","tools":[{"type":"function","name":"image_generation"}]}"#).imageGenerationTool)
        #expect(throws: RequestPeekError.invalidField(name: "max_tool_calls", requirement: "must be a non-negative integer")) {
            try peek(#"{"model":"m","max_tool_calls":"3"}"#)
        }
        // What the tools hold is still read: a cache_control on a tool (Anthropic caches tool
        // definitions so), and strings judged by their own member's name.
        #expect(try peek(#"{"model":"claude","tools":[{"name":"t","input_schema":{},"cache_control":{"type":"ephemeral","ttl":"1h"}}]}"#).asksPromptCache)
        let prose = String(repeating: "words ", count: 2_000)
        let described = #"{"model":"claude","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x"}}]}],"tools":[{"name":"t","description":"data:image/png;base64,\#(prose)"}]}"#
        let p = try peek(described)
        #expect(p.inlineImages == 0 && PromptEstimate.tokens(p) == PromptEstimate.tokens(bodyBytes: described.utf8.count))
    }

    @Test("a background response is refused: it is billed after the call returns, out of the gateway's sight")
    func backgroundRefused() throws {
        #expect(message(#"{"model":"m","input":"x","background":true}"#)?.hasPrefix("field 'background' is not supported") == true)
        #expect(try peek(#"{"model":"m","background":false}"#).model == "m")
        #expect(try peek(#"{"model":"m","background":null}"#).model == "m")
        #expect(message(#"{"model":"m","background":"yes"}"#) == "field 'background' must be a boolean")
        #expect(message(#"{"model":"m","background":false,"background":true}"#) == "field 'background' appears more than once")
    }

    @Test("the service tier and Anthropic's speed are read: they can change the price")
    func tierAndSpeed() throws {
        let p = try peek(#"{"model":"m","service_tier":"priority","speed":"fast"}"#)
        #expect(p.serviceTier == "priority" && p.speed == "fast")
        #expect(try peek(#"{"model":"m","service_tier":null}"#).serviceTier == nil)
        #expect(message(#"{"model":"m","service_tier":1}"#) == "field 'service_tier' must be a string")
        #expect(message(#"{"model":"m","speed":"fast","speed":"standard"}"#) == "field 'speed' appears more than once")
    }

    @Test("Anthropic's inference_geo is read: a call run in the US only costs more")
    func inferenceGeo() throws {
        #expect(try peek(#"{"model":"m","inference_geo":"us"}"#).inferenceGeo == "us")
        #expect(try peek(#"{"model":"m","inference_geo":null}"#).inferenceGeo == nil)
        #expect(message(#"{"model":"m","inference_geo":["us"]}"#) == "field 'inference_geo' must be a string")
        #expect(message(#"{"model":"m","inference_geo":"global","inference_geo":"us"}"#) == "field 'inference_geo' appears more than once")
    }

    @Test func nullsReadAsAbsent() throws {
        let p = try peek(#"{"model":"m","stream":null,"stream_options":null,"max_tokens":null,"user":null,"metadata":null}"#)
        #expect(!p.stream)
        #expect(p.includeUsage == nil && p.maxTokens == nil && p.user == nil && p.metadataUserID == nil)
        #expect(p.outputCap == nil)
    }

    @Test func anthropicAndResponsesCaps() throws {
        let a = try peek(#"{"model":"claude-3-5-haiku-latest","max_tokens":1024,"metadata":{"user_id":"abc"},"messages":[]}"#)
        #expect(a.maxTokens == 1024 && a.metadataUserID == "abc")
        let r = try peek(#"{"model":"o4-mini","max_output_tokens":2048,"input":"hi"}"#)
        #expect(r.maxOutputTokens == 2048 && r.outputCap == 2048)
        let both = try peek(#"{"model":"m","max_tokens":10,"max_completion_tokens":20}"#)
        #expect(both.outputCap == 20)
        #expect(throws: RequestPeekError.missingField(name: "model")) { try peek(#"{"max_tokens":1}"#).requireModel() }
    }

    @Test func integerNotations() throws {
        #expect(try peek(#"{"max_tokens":-0}"#).maxTokens == 0)
        #expect(try peek(#"{"max_tokens":0.0}"#).maxTokens == 0)
        #expect(try peek(#"{"max_tokens":1e3}"#).maxTokens == 1000)
        #expect(try peek(#"{"max_tokens":1E+3}"#).maxTokens == 1000)
        #expect(try peek(#"{"max_tokens":1000.000}"#).maxTokens == 1000)
        #expect(try peek(#"{"max_tokens":12500e-1}"#).maxTokens == 1250)
        #expect(try peek(#"{"max_tokens":0.5e1}"#).maxTokens == 5)
        let nonInteger = "field 'max_tokens' must be a non-negative integer"
        #expect(message(#"{"max_tokens":1.5}"#) == nonInteger)
        #expect(message(#"{"max_tokens":15e-1}"#) == nonInteger)
        #expect(message(#"{"max_tokens":-1}"#) == nonInteger)
        #expect(message(#"{"max_tokens":"100"}"#) == nonInteger)
        #expect(message(#"{"max_tokens":true}"#) == nonInteger)
        #expect(message(#"{"max_completion_tokens":1e-400}"#) == "field 'max_completion_tokens' must be a non-negative integer")
        #expect(message(#"{"max_output_tokens":1e400}"#) == "field 'max_output_tokens' must be at most 1000000000")
        #expect(message(#"{"max_tokens":99999999999999999999999}"#) == "field 'max_tokens' must be at most 1000000000")
    }

    @Test func wrongTypesNameTheField() {
        #expect(message(#"{"model":42}"#) == "field 'model' must be a string")
        #expect(message(#"{"model":null}"#) == "field 'model' must be a string")
        #expect(message(#"{"model":"m","stream":"true"}"#) == "field 'stream' must be a boolean")
        #expect(message(#"{"stream_options":true}"#) == "field 'stream_options' must be an object")
        #expect(message(#"{"stream_options":{"include_usage":1}}"#) == "field 'stream_options.include_usage' must be a boolean")
        #expect(message(#"{"user":["a"]}"#) == "field 'user' must be a string")
        #expect(message(#"{"metadata":"x"}"#) == "field 'metadata' must be an object")
        #expect(message(#"{"metadata":{"user_id":7}}"#) == "field 'metadata.user_id' must be a string")
        #expect(message(#"{"model":"a","model":"b"}"#) == "field 'model' appears more than once")
        #expect(message(#"{"max_tokens":1,"max_tokens":100000}"#) == "field 'max_tokens' appears more than once")
        #expect(message(#"{"stream_options":{"include_usage":true,"include_usage":false}}"#)
                == "field 'stream_options.include_usage' appears more than once")
        #expect((try? peek(#"{"model":7}"#)) == nil)
        do { _ = try peek(#"{"stream":1}"#) } catch { #expect(error.field == "stream") }
    }

    @Test("a top-level name that differs from a field read only in case is refused: Go servers (Ollama) would read it for that field")
    func caseVariantsOfReadFields() throws {
        let variant = "only in letter case; some servers read field names regardless of case"
        #expect(message(#"{"model":"gpt-4o-mini","MODEL":"gpt-4o"}"#)?.hasPrefix("field 'MODEL' differs from 'model' \(variant)") == true)
        #expect(message(#"{"model":"m","Max_Tokens":99999}"#)?.hasPrefix("field 'Max_Tokens' differs from 'max_tokens' ") == true)
        #expect(message(#"{"Model":"gpt-4o","model":"m"}"#)?.contains("'Model' differs from 'model'") == true)
        #expect(message(#"{"model":"m","N":4}"#)?.contains("'N' differs from 'n'") == true)
        #expect(message(#"{"model":"m","\u004dax_tokens":9}"#)?.contains("'Max_tokens' differs from 'max_tokens'") == true)
        // Go folds the Kelvin sign to k and the long s to s (a verification trial's), escaped or raw.
        #expect(message(#"{"model":"m","max_to\u212aens":5000}"#)?.contains("differs from 'max_tokens'") == true)
        #expect(message(#"{"model":"m","\u017ftream":true}"#)?.contains("differs from 'stream'") == true)
        #expect(message("{\"model\":\"m\",\"max_to\u{212A}ens\":5000}")?.contains("differs from 'max_tokens'") == true)
        // Nested in stream_options too: Ollama would read include_usage false (a reviewer's).
        #expect(message(#"{"model":"m","stream_options":{"include_usage":true,"Include_Usage":false}}"#)
                == "field 'stream_options.Include_Usage' differs from 'include_usage' only in letter case; some servers read field names regardless of case and would take it for 'include_usage': send 'include_usage' alone")
        // Other names in any case are the provider's business.
        for body in [#"{"model":"m","Temperature":1,"messages":[{"Role":"user"}],"MODEL_X":1}"#,
                     #"{"model":"m","stream_options":{"include_usage":true,"Other":1}}"#] {
            #expect(try peek(body).model == "m")
        }
    }

    @Test func malformedBodies() {
        #expect(message("") == "request body is empty")
        #expect(message("   ") == "malformed JSON at byte 3: unexpected end of input")
        #expect(message("[1,2]") == "request body must be a JSON object")
        #expect(message(#""text""#) == "request body must be a JSON object")
        #expect(message("nope") == "malformed JSON at byte 1: invalid literal")
        #expect(message(#"{"model":"gpt-4o" "stream":true}"#) == "malformed JSON at byte 18: expected ',' or '}'")
        #expect(message(#"{"model":"gpt-4o""#) == "malformed JSON at byte 17: unexpected end of input")
        #expect(message(#"{"model":"gpt"#) == "malformed JSON at byte 13: unexpected end of input")
        #expect(message(#"{"model":"m",}"#) == "malformed JSON at byte 13: expected a member name in double quotes")
        #expect(message(#"{model:"m"}"#) == "malformed JSON at byte 1: expected a member name in double quotes")
        #expect(message(#"{"a" 1}"#) == "malformed JSON at byte 5: expected ':'")
        #expect(message(#"{"a":[1,2}"#) == "malformed JSON at byte 9: expected ',' or ']'")
        #expect(message(#"{"a":01}"#) == "malformed JSON at byte 6: leading zeros are not allowed")
        #expect(message(#"{"a":1.}"#) == "malformed JSON at byte 7: expected a digit after '.'")
        #expect(message(#"{"a":+1}"#) == "malformed JSON at byte 5: expected a value")
        #expect(message(#"{"a":tru}"#) == "malformed JSON at byte 8: invalid literal")
        #expect(message(#"{"a":"\x"}"#) == "malformed JSON at byte 7: invalid escape in string")
        #expect(message(#"{"a":"\u12G4"}"#) == #"malformed JSON at byte 10: expected a hex digit in \u escape"#)
        #expect(message("{\"a\":\"tab\there\"}") == "malformed JSON at byte 9: control character in string")
        #expect(message(#"{"a":1} {"#) == "malformed JSON at byte 8: unexpected content after the top-level value")
        #expect(message(#"{"a":{"b":{"c":[[{"d":1}]]}}"#) == "malformed JSON at byte 28: unexpected end of input")
        // A syntax error wins over a field error met earlier.
        #expect(message(#"{"model":1,"x":}"#) == "malformed JSON at byte 15: expected a value")
    }

    @Test func everyTruncationIsRejected() {
        let body = Array(#"{"model":"m","messages":[{"role":"user","content":"h\u00e9"}],"stream":true,"max_tokens":1e2,"n":null}"#.utf8)
        #expect((try? RequestPeek(body: body)) != nil)
        for cut in 0..<body.count {
            #expect((try? RequestPeek(body: Array(body[..<cut]))) == nil, "cut at \(cut)")
        }
    }

    @Test func deepNestingDoesNotOverflowTheStack() throws {
        let depth = 200_000
        let body = "{\"model\":\"m\",\"x\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        #expect(try peek(body).model == "m")
        let unbalanced = "{\"x\":" + String(repeating: "[{\"a\":", count: 1000) + "1" + String(repeating: "}]", count: 999) + "]}"
        #expect(message(unbalanced)?.hasPrefix("malformed JSON") == true)
    }

    @Test func escapedKeysAreRecognised() throws {
        let p = try peek(#"{"mod\u0065l":"m\/1","\u0073tream":true}"#)
        #expect(p.model == "m/1" && p.stream)
        #expect(try peek(#"{"model":"\ud83d"}"#).model == "\u{FFFD}")
    }

    @Test func readsByteBuffers() throws {
        var buffer = ByteBuffer(string: "xx")
        buffer.moveReaderIndex(forwardBy: 2)
        buffer.writeString(#"{"model":"m"}"#)
        #expect(try RequestPeek(body: buffer).model == "m")
    }
}

@Suite struct IncludeUsageTests {
    func rewrite(_ text: String) throws -> String {
        let body = Array(text.utf8)
        let peek = try RequestPeek(body: body)
        let out = peek.withIncludeUsage(body)
        // The rewritten body reads back with include_usage on, everything else the same.
        let again = try RequestPeek(body: out)
        #expect(again.includeUsage == true)
        #expect(again.model == peek.model && again.stream == peek.stream && again.maxTokens == peek.maxTokens)
        let viaBuffer = peek.withIncludeUsage(ByteBuffer(body))
        #expect(viaBuffer.bytes == out)
        return String(decoding: out, as: UTF8.self)
    }

    @Test func insertsWhenAbsent() throws {
        #expect(try rewrite(#"{"model":"m","stream":true}"#)
                == #"{"stream_options":{"include_usage":true},"model":"m","stream":true}"#)
        #expect(try rewrite(" { \"model\" : \"m\" } ")
                == #" {"stream_options":{"include_usage":true}, "model" : "m" } "#)
        #expect(try rewrite("{}") == #"{"stream_options":{"include_usage":true}}"#)
    }

    @Test func editsStreamOptions() throws {
        #expect(try rewrite(#"{"model":"m","stream_options":null,"stream":true}"#)
                == #"{"model":"m","stream_options":{"include_usage":true},"stream":true}"#)
        #expect(try rewrite(#"{"model":"m","stream_options":{}}"#)
                == #"{"model":"m","stream_options":{"include_usage":true}}"#)
        #expect(try rewrite(#"{"model":"m","stream_options":{ "x": 1 }}"#)
                == #"{"model":"m","stream_options":{"include_usage":true, "x": 1 }}"#)
        #expect(try rewrite(#"{"model":"m","stream_options":{"x":1,"include_usage": false}}"#)
                == #"{"model":"m","stream_options":{"x":1,"include_usage": true}}"#)
        #expect(try rewrite(#"{"model":"m","stream_options":{"include_usage":null}}"#)
                == #"{"model":"m","stream_options":{"include_usage":true}}"#)
    }

    @Test func leavesTrueAlone() throws {
        let text = #"{"model":"m","stream_options":{"include_usage":true}}"#
        let peek = try RequestPeek(body: Array(text.utf8))
        #expect(!peek.needsIncludeUsage)
        #expect(try rewrite(text) == text)
    }
}

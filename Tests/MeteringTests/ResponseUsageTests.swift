import NIOCore
import Testing
@testable import Metering

@Suite struct ResponseUsageTests {
    func read(_ endpoint: Endpoint, _ body: String, status: Int = 200) -> ResponseReading {
        ResponseUsage.read(endpoint: endpoint, status: status, body: Array(body.utf8))
    }

    @Test func chatCompletionsSubtractsCachedTokens() {
        let r = read(.chatCompletions, Fixtures.chatBody)
        #expect(r.usage == Fixtures.chatUsage)
        #expect(r.servedModel == "o3-mini-2025-01-31")
        #expect(r.providerErrorMessage == nil)
        #expect(r.isCompleteJSON)
    }

    @Test func completionsWithoutDetails() {
        let body = #"{"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"x","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#
        #expect(read(.completions, body).usage == Usage(inputTokens: 5, outputTokens: 7))
    }

    @Test func embeddingsHaveNoOutput() {
        let r = read(.embeddings, Fixtures.embeddingsBody)
        #expect(r.usage == Usage(inputTokens: 8))
        #expect(r.servedModel == "text-embedding-3-small")
    }

    @Test func responsesIncludeCachedAndReasoning() {
        let r = read(.responses, Fixtures.responsesBody)
        #expect(r.usage == Fixtures.responsesUsage)
        #expect(r.servedModel == Fixtures.responsesModel)
    }

    @Test("the tier that served the call: OpenAI's service_tier (a Responses body's too), Anthropic's usage.speed")
    func servedTier() {
        func tier(_ endpoint: Endpoint, _ body: String) -> String?? { read(endpoint, body).servedTier }
        let usage = #""usage":{"prompt_tokens":1,"completion_tokens":1}"#
        #expect(tier(.chatCompletions, #"{"model":"m","service_tier":"priority",\#(usage)}"#) == .some("priority"))
        #expect(tier(.chatCompletions, #"{"model":"m","service_tier":"default",\#(usage)}"#) == .some(nil))
        #expect(tier(.chatCompletions, #"{"model":"m","service_tier":"scale",\#(usage)}"#) == .some(nil))
        #expect(tier(.chatCompletions, #"{"model":"m",\#(usage)}"#) == .none)
        #expect(tier(.responses, #"{"id":"r","service_tier":"flex","usage":{"input_tokens":1,"output_tokens":1}}"#) == .some("flex"))
        func anthropic(_ inner: String) -> String {
            #"{"model":"claude","usage":{"input_tokens":1,"output_tokens":1,"service_tier":"standard""# + inner + "}}"
        }
        #expect(tier(.messages, anthropic(#","speed":"fast""#)) == .some("fast"))
        #expect(tier(.messages, anthropic(#","speed":"standard""#)) == .some(nil))
        #expect(tier(.messages, anthropic("")) == .none)
    }

    @Test("where the call ran: Anthropic's usage.inference_geo, when it says")
    func servedGeo() {
        func geo(_ inner: String) -> String? {
            read(.messages, #"{"model":"claude","usage":{"input_tokens":1,"output_tokens":1"# + inner + "}}").servedGeo
        }
        #expect(geo(#","inference_geo":"us""#) == "us")
        #expect(geo(#","inference_geo":"not_available""#) == "not_available")
        #expect(geo(#","inference_geo":null"#) == nil)
        #expect(geo("") == nil)
        // Only a usage's: a top-level member of that name is no report.
        #expect(read(.messages, #"{"inference_geo":"us","usage":{"input_tokens":1,"output_tokens":1}}"#).servedGeo == nil)
    }

    @Test("audio tokens: OpenAI's audio_tokens in the prompt and completion details, parts of their totals")
    func audioTokens() {
        let body = #"{"model":"gpt-audio","choices":[],"usage":{"prompt_tokens":57,"completion_tokens":181,"total_tokens":238,"prompt_tokens_details":{"cached_tokens":7,"text_tokens":10,"image_tokens":0,"audio_tokens":40},"completion_tokens_details":{"reasoning_tokens":0,"text_tokens":33,"audio_tokens":148}}}"#
        #expect(read(.chatCompletions, body).usage
                == Usage(inputTokens: 50, cachedInputTokens: 7, outputTokens: 181, audioInputTokens: 40, audioOutputTokens: 148))
        // Audio read from the cache is among the cached tokens: at most the rest is audio.
        let cachedAudio = #"{"usage":{"prompt_tokens":50,"completion_tokens":1,"prompt_tokens_details":{"audio_tokens":50,"cached_tokens":20}}}"#
        #expect(read(.chatCompletions, cachedAudio).usage?.audioInputTokens == 30)
        #expect(read(.chatCompletions, #"{"usage":{"prompt_tokens":5,"completion_tokens":1,"completion_tokens_details":{"audio_tokens":-1}}}"#).usage == nil)
    }

    @Test("web searches: Anthropic's usage.server_tool_use, a Responses answer's web_search_call items")
    func webSearches() {
        let anthropic = #"{"model":"claude","usage":{"input_tokens":10,"output_tokens":5,"server_tool_use":{"web_search_requests":5}}}"#
        #expect(read(.messages, anthropic).usage == Usage(inputTokens: 10, outputTokens: 5, webSearches: 5))
        let responses = #"{"id":"r","output":[{"type":"web_search_call","id":"ws_1","status":"completed"},{"type":"reasoning","summary":[]},{"type":"web_search_call","id":"ws_2","status":"completed"},{"type":"message","content":[{"type":"output_text","text":"web_search_call"}]}],"usage":{"input_tokens":10,"output_tokens":5}}"#
        #expect(read(.responses, responses).usage == Usage(inputTokens: 10, outputTokens: 5, webSearches: 2))
        let none = #"{"id":"r","output":[{"type":"message","content":[]}],"usage":{"input_tokens":10,"output_tokens":5}}"#
        #expect(read(.responses, none).usage == Usage(inputTokens: 10, outputTokens: 5))
        #expect(read(.messages, #"{"usage":{"input_tokens":1,"server_tool_use":{"web_search_requests":-1}}}"#).usage == nil)
    }

    @Test("file searches: a Responses answer's file_search_call items, beside its web searches")
    func fileSearches() {
        let body = #"{"id":"r","output":[{"type":"file_search_call","id":"fs_1","status":"completed","queries":["q"],"results":null},{"type":"web_search_call","id":"ws_1","status":"completed"},{"type":"file_search_call","id":"fs_2","status":"completed"},{"type":"message","content":[{"type":"output_text","text":"file_search_call"}]}],"usage":{"input_tokens":10,"output_tokens":5}}"#
        #expect(read(.responses, body).usage == Usage(inputTokens: 10, outputTokens: 5, webSearches: 1, fileSearches: 2))
        let files = #"{"id":"r","output":[{"type":"file_search_call","id":"fs_1"}],"usage":{"input_tokens":10,"output_tokens":5}}"#
        #expect(read(.responses, files).usage == Usage(inputTokens: 10, outputTokens: 5, fileSearches: 1))
    }

    @Test func anthropicInputExcludesCache() {
        let r = read(.messages, Fixtures.anthropicBody)
        #expect(r.usage == Usage(inputTokens: 2095, cachedInputTokens: 50000, cacheWriteTokens: 0, outputTokens: 503))
        #expect(r.servedModel == "claude-sonnet-4-5-20250929")
    }

    @Test("Anthropic's 1-hour cache writes are read from cache_creation, as part of the writes")
    func anthropicHourWrites() {
        let body = #"{"type":"message","usage":{"input_tokens":10,"cache_creation_input_tokens":1000,"cache_read_input_tokens":5,"cache_creation":{"ephemeral_5m_input_tokens":400,"ephemeral_1h_input_tokens":600},"output_tokens":3}}"#
        let r = ResponseUsage.read(endpoint: .messages, status: 200, body: Array(body.utf8))
        #expect(r.usage == Usage(inputTokens: 10, cachedInputTokens: 5, cacheWriteTokens: 1_000, cacheWrite1hTokens: 600,
                                 outputTokens: 3))
        // A 1-hour count above the whole writes is the writes; nonsense in it, no usage at all.
        let over = #"{"usage":{"input_tokens":1,"cache_creation_input_tokens":10,"cache_creation":{"ephemeral_1h_input_tokens":99},"output_tokens":1}}"#
        #expect(ResponseUsage.read(endpoint: .messages, status: 200, body: Array(over.utf8)).usage?.cacheWrite1hTokens == 10)
        let bad = #"{"usage":{"input_tokens":1,"cache_creation_input_tokens":10,"cache_creation":{"ephemeral_1h_input_tokens":"x"},"output_tokens":1}}"#
        #expect(ResponseUsage.read(endpoint: .messages, status: 200, body: Array(bad.utf8)).usage == nil)
    }

    @Test func anthropicNullCacheFields() {
        let body = #"{"type":"message","model":"claude-3-haiku-20240307","usage":{"input_tokens":10,"cache_creation_input_tokens":null,"cache_read_input_tokens":null,"output_tokens":3}}"#
        #expect(read(.messages, body).usage == Usage(inputTokens: 10, outputTokens: 3))
    }

    @Test func countTokensIsFree() {
        #expect(read(.countTokens, #"{"input_tokens":2095}"#).usage == .zero)
        #expect(read(.countTokens, "not json").usage == nil)
    }

    @Test func errorBodiesGiveTheProviderMessage() {
        let o = read(.chatCompletions, Fixtures.openAIError, status: 401)
        #expect(o.usage == nil)
        #expect(o.providerErrorMessage?.hasPrefix("Incorrect API key provided: sk-abc.") == true)
        let a = read(.messages, Fixtures.anthropicError, status: 404)
        #expect(a.providerErrorMessage == "model: claude-nope")
        #expect(a.usage == nil)
        #expect(read(.chatCompletions, #"{"error":"rate limited"}"#, status: 429).providerErrorMessage == "rate limited")
        #expect(read(.chatCompletions, "  <html>502 Bad Gateway</html>\n", status: 502).providerErrorMessage
                == "<html>502 Bad Gateway</html>")
        #expect(read(.chatCompletions, "", status: 500).providerErrorMessage == nil)
    }

    @Test func errorMessagesAreTruncated() {
        let long = String(repeating: "é", count: 600)
        let r = read(.messages, #"{"type":"error","error":{"type":"invalid_request_error","message":"\#(long)"}}"#, status: 400)
        #expect(r.providerErrorMessage == String(repeating: "é", count: 500))
    }

    @Test func nonsenseCountsMeanNoUsage() {
        func usage(_ u: String) -> Usage? { read(.chatCompletions, #"{"model":"m","usage":\#(u)}"#).usage }
        #expect(usage(#"{"prompt_tokens":-1,"completion_tokens":2}"#) == nil)
        #expect(usage(#"{"prompt_tokens":100000001,"completion_tokens":2}"#) == nil)
        #expect(usage(#"{"prompt_tokens":1e300,"completion_tokens":2}"#) == nil)
        #expect(usage(#"{"prompt_tokens":1.5,"completion_tokens":2}"#) == nil)
        #expect(usage(#"{"prompt_tokens":"3","completion_tokens":2}"#) == nil)
        #expect(usage(#"{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":11}}"#) == nil)
        #expect(usage("null") == nil)
        #expect(usage("{}") == nil)
        #expect(usage(#"{"prompt_tokens":100000000,"completion_tokens":2.0}"#) == Usage(inputTokens: 100_000_000, outputTokens: 2))
        // Reasoning is part of output; a larger figure is clamped rather than trusted.
        #expect(usage(#"{"prompt_tokens":1,"completion_tokens":2,"completion_tokens_details":{"reasoning_tokens":5}}"#)
                == Usage(inputTokens: 1, outputTokens: 2, reasoningTokens: 2))
        #expect(read(.chatCompletions, #"{"usage":{"prompt_tokens":1}"#).usage == nil)  // truncated body
    }

    @Test func bodyMayBeAByteBufferSlice() {
        var buffer = ByteBuffer(string: "junk")
        buffer.moveReaderIndex(forwardBy: 4)
        buffer.writeString(Fixtures.anthropicBody)
        #expect(ResponseUsage.read(endpoint: .messages, status: 200, body: buffer).servedModel == "claude-sonnet-4-5-20250929")
    }
}

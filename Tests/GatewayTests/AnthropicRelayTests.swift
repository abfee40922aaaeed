import FakeLLM
import Foundation
import Ledger
import Metering
import Testing

@Suite("Anthropic dialect end to end")
struct AnthropicRelayTests {
    @Test("messages, streaming and not, with cache reads and writes (11 of the 17 to the 1-hour cache, at twice the input)")
    func messages() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-cached-tokens": "13", "x-fake-cache-write-tokens": "17",
                                                   "x-fake-cache-write-1h-tokens": "11"])
        defer { h.shutdown() }
        for (id, stream) in [("msg-1", false), ("msg-2", true)] {
            let body = #"{"model":"claude-3-5-haiku-20241022","max_tokens":100,"stream":\#(stream),"messages":[{"role":"user","content":"hello"}]}"#
            let r = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: body, requestID: id)
            let exchange = try #require(h.fake.exchange(requestID: id))
            #expect(r.status == 200)
            #expect(r.body == exchange.responseBody)
            #expect(exchange.requestHeader("x-api-key") == h.providerKey)
            #expect(exchange.requestHeader("anthropic-version") == "2023-06-01")
            let expected = try #require(FakeUsage.expected(for: exchange))
            let row = try #require(try h.row(id))
            #expect(row.dialect == .anthropic)
            #expect(row.stream == stream)
            #expect(row.usage == Usage(inputTokens: expected.uncachedInputTokens, cachedInputTokens: 13,
                                       cacheWriteTokens: 17, cacheWrite1hTokens: 11, outputTokens: expected.outputTokens))
            let writes: Int64 = 6 * HarnessPrice.haikuWrite + 11 * 2 * HarnessPrice.haikuInput
            #expect(row.cost.picodollars == Int64(expected.uncachedInputTokens) * HarnessPrice.haikuInput
                    + 13 * HarnessPrice.haikuCached + writes + Int64(expected.outputTokens) * HarnessPrice.haikuOutput)
            #expect(row.price?.cacheWrite1h.picodollars == 2 * HarnessPrice.haikuInput)
            #expect(row.priceId == "claude-3-5-haiku-*@2024-11-04")
            if stream { #expect(r.text.contains("event: message_stop")) }
        }
    }

    @Test("a client's anthropic-version replaces the provider's configured one; other provider headers still go, once; a client's repeated beta lines all go")
    func clientVersionHeadersWin() async throws {
        // The test client sends anthropic-version 2023-06-01 on every Anthropic call.
        let h = try ProxyHarness(providerHeaders: ["Anthropic-Version": "2099-01-01", "X-Fake-Cached-Tokens": "3"])
        defer { h.shutdown() }
        let body = #"{"model":"claude-3-5-haiku-20241022","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#
        let r = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: body, requestID: "ver-1",
                                 headers: [("anthropic-beta", "tools-2024"), ("anthropic-beta", "files-api-2025-04-14")])
        #expect(r.status == 200)
        let exchange = try #require(h.fake.exchange(requestID: "ver-1"))
        let sent = { (name: String) in exchange.requestHeaders.filter { $0.0.lowercased() == name }.map(\.1) }
        #expect(sent("anthropic-version") == ["2023-06-01"])
        #expect(sent("anthropic-beta") == ["tools-2024", "files-api-2025-04-14"])
        #expect(sent("x-fake-cached-tokens") == ["3"], "a provider header goes lowercased, once")
        #expect(exchange.requestHeaders.contains { $0.0 == "x-fake-cached-tokens" })
        #expect(sent("x-api-key") == [h.providerKey])
        #expect(sent("x-request-id") == ["ver-1"])
    }

    @Test("count_tokens is forwarded and recorded at no cost")
    func countTokens() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let body = #"{"model":"claude-sonnet-4-20250514","messages":[{"role":"user","content":"count me"}]}"#
        let r = try await h.post("/v1/messages/count_tokens", key: h.bobKey, dialect: "anthropic", json: body,
                                 requestID: "count-1")
        let exchange = try #require(h.fake.exchange(requestID: "count-1"))
        #expect(r.status == 200)
        #expect(r.body == exchange.responseBody)
        let row = try #require(try h.row("count-1"))
        #expect(row.outcome == .ok)
        #expect(row.cost == .zero)
    }
}

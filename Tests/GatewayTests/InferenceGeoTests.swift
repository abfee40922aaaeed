import FakeLLM
import Foundation
import Ledger
import Metering
import Testing
@testable import Gateway

/// Anthropic's US-only inference (`inference_geo: "us"`, or a workspace's default geo): the
/// entry's `us_only` multiple of every token price, chosen by where the answer says the call
/// ran, else by the request; refused while unpriced models are when the entry has none.
@Suite("US-only inference")
struct InferenceGeoTests {
    static func message(_ model: String, geo: String?, stream: Bool = false, maxTokens: Int = 64) -> String {
        #"{"model":"\#(model)","max_tokens":\#(maxTokens),"messages":[{"role":"user","content":"hi"}]"#
            + (geo.map { #","inference_geo":"\#($0)""# } ?? "") + (stream ? #","stream":true"# : "") + "}"
    }

    /// What FakeLLM's answer to `id` costs at per-token input and output prices (pd).
    static func cost(_ h: ProxyHarness, _ id: String, input: Int64, output: Int64) throws -> Int64 {
        let exchange = try #require(h.fake.exchange(requestID: id))
        let usage = try #require(FakeUsage.expected(for: exchange))
        return Int64(usage.uncachedInputTokens) * input + Int64(usage.outputTokens) * output
    }

    @Test("a call run in the US only is charged 1.1 times every token price, streamed or not, asked or by its workspace's default")
    func charged() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        for (id, geo, stream) in [("us", "us", false), ("us-stream", "us", true), ("global", "global", false),
                                  ("unsaid", nil, true)] as [(String, String?, Bool)] {
            let r = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                     json: Self.message("claude-opus-4-6", geo: geo, stream: stream), requestID: id)
            #expect(r.status == 200, "\(id)")
        }
        for id in ["us", "us-stream"] {
            let row = try #require(try h.row(id))
            #expect(row.price?.id == "claude-opus-4-6 us-only@2025-11-01", "\(id)")
            #expect(row.price?.input.picodollars == 5_500_000 && row.price?.output.picodollars == 27_500_000)
            #expect(row.cost.picodollars == (try Self.cost(h, id, input: 5_500_000, output: 27_500_000)), "\(id)")
            #expect(row.errorMessage == nil)
        }
        for id in ["global", "unsaid"] {
            let row = try #require(try h.row(id))
            #expect(row.price?.id == "claude-opus-4-6@2025-11-01", "\(id)")
            #expect(row.cost.picodollars == (try Self.cost(h, id, input: 5_000_000, output: 25_000_000)), "\(id)")
        }

        // A workspace whose default geo is the US: the answer says so, the request does not.
        let workspace = try ProxyHarness(providerHeaders: [FakeHeader.inferenceGeo: "us"])
        defer { workspace.shutdown() }
        for (id, stream) in [("default-us", false), ("default-us-stream", true)] {
            let r = try await workspace.post("/v1/messages", key: workspace.aliceKey, dialect: "anthropic",
                                             json: Self.message("claude-opus-4-6", geo: nil, stream: stream), requestID: id)
            #expect(r.status == 200)
            let row = try #require(try workspace.row(id))
            #expect(row.price?.id == "claude-opus-4-6 us-only@2025-11-01", "\(id)")
            #expect(row.cost.picodollars == (try Self.cost(workspace, id, input: 5_500_000, output: 27_500_000)), "\(id)")
        }
    }

    @Test("fast mode run in the US only: the fast entry, which has no multiple of its own, times its standard entry's")
    func fastAndUSOnly() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let body = #"{"model":"claude-opus-4-6","max_tokens":64,"speed":"fast","inference_geo":"us","messages":[{"role":"user","content":"hi"}]}"#
        #expect(try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: body, requestID: "fast-us").status == 200)
        let row = try #require(try h.row("fast-us"))
        #expect(row.price?.id == "claude-opus-4-6 fast+us-only@2025-11-01")
        #expect(row.cost.picodollars == (try Self.cost(h, "fast-us", input: 33_000_000, output: 165_000_000)))
    }

    @Test("a stream cut after message_start said where it ran: its estimate is charged the US-only price")
    func cutStream() async throws {
        let h = try ProxyHarness(providerHeaders: [FakeHeader.fail: FakeFailure.cutMidStream.rawValue])
        defer { h.shutdown() }
        _ = try? await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                              json: Self.message("claude-opus-4-6", geo: nil, stream: true), requestID: "cut")
        let row = try #require(try await h.awaitRow("cut"))
        #expect(row.outcome == .upstreamError)
        #expect(row.price?.id == "claude-opus-4-6@2025-11-01", "nothing said where it ran, nothing asked: the global price")
        let h2 = try ProxyHarness(providerHeaders: [FakeHeader.fail: FakeFailure.cutMidStream.rawValue,
                                                    FakeHeader.inferenceGeo: "us"])
        defer { h2.shutdown() }
        _ = try? await h2.post("/v1/messages", key: h2.aliceKey, dialect: "anthropic",
                               json: Self.message("claude-opus-4-6", geo: nil, stream: true), requestID: "cut-us")
        let us = try #require(try await h2.awaitRow("cut-us"))
        #expect(us.outcome == .upstreamError)
        #expect(us.price?.id == "claude-opus-4-6 us-only@2025-11-01")
        #expect(us.cost == us.price?.cost(of: us.usage))
    }

    @Test("a model without a US-only price: asking for it is refused before going upstream; run there unasked, charged the global price and said")
    func unpriced() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let r = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                 json: Self.message("claude-sonnet-4-6", geo: "us"), requestID: "refused")
        #expect(r.status == 400)
        let error = try errorObject(r)
        #expect(error["type"] as? String == "invalid_request_error")
        #expect((error["message"] as? String)?.contains("no price for calls run in the US only") == true)
        #expect(try h.row("refused")?.outcome == .refusedUnpriced)
        // A refused stream's row says it asked for one.
        let stream = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                      json: Self.message("claude-sonnet-4-6", geo: "us", stream: true), requestID: "refused-stream")
        #expect(stream.status == 400)
        #expect(try h.row("refused-stream")?.stream == true && h.row("refused")?.stream == false)
        #expect(h.fake.requestCount == 0)
        // The global geo asked for, a token count (free), and the OpenAI dialect (which has no
        // such parameter): admitted.
        #expect(try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                 json: Self.message("claude-sonnet-4-6", geo: "global"), requestID: "global").status == 200)
        #expect(try await h.post("/v1/messages/count_tokens", key: h.aliceKey, dialect: "anthropic",
                                 json: #"{"model":"claude-sonnet-4-6","inference_geo":"us","messages":[{"role":"user","content":"hi"}]}"#,
                                 requestID: "count").status == 200)
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey,
                                 json: #"{"model":"gpt-4o-mini","inference_geo":"us","messages":[{"role":"user","content":"hi"}]}"#,
                                 requestID: "openai").status == 200)
        #expect(try h.row("openai")?.price?.id == "gpt-4o-mini@2024-07-18")

        let note = "run in the US only (inference_geo), which prices.yaml does not price for 'claude-sonnet-4-6': charged at the global price"
        let allowing = try ProxyHarness(gatewayYAML: "unpriced_models: allow")
        defer { allowing.shutdown() }
        #expect(try await allowing.post("/v1/messages", key: allowing.aliceKey, dialect: "anthropic",
                                        json: Self.message("claude-sonnet-4-6", geo: "us"), requestID: "allowed").status == 200)
        let allowed = try #require(try allowing.row("allowed"))
        #expect(allowed.price?.id == "claude-sonnet-4-*@2025-05-22")
        #expect(allowed.cost.picodollars == (try Self.cost(allowing, "allowed", input: 3_000_000, output: 15_000_000)))
        #expect(allowed.errorMessage == note)

        let workspace = try ProxyHarness(providerHeaders: [FakeHeader.inferenceGeo: "us"])
        defer { workspace.shutdown() }
        #expect(try await workspace.post("/v1/messages", key: workspace.aliceKey, dialect: "anthropic",
                                         json: Self.message("claude-sonnet-4-6", geo: nil), requestID: "unasked").status == 200)
        #expect(try workspace.row("unasked")?.errorMessage == note)
    }

    @Test("a fallback without a US-only price is skipped for a call asking for one, and the row says why")
    func fallbackSkipped() async throws {
        let h = try ProxyHarness(providersForFake: { url in """
            providers:
              down: { dialect: anthropic, base_url: "\(url)", api_key_env: E2E_PROVIDER_KEY, retries: 0, headers: { "x-fake-status": "503" } }
              up:   { dialect: anthropic, base_url: "\(url)", api_key_env: E2E_PROVIDER_KEY }
            models:
              - { match: "claude-opus-4-6", provider: down, fallbacks: [claude-sonnet-4-6] }
              - { match: "claude-*", provider: up }
            """ })
        defer { h.shutdown() }
        let r = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                 json: Self.message("claude-opus-4-6", geo: "us"), requestID: "skipped")
        #expect(r.status == 503)
        let row = try #require(try h.row("skipped"))
        #expect(row.errorMessage?.contains("fallback claude-sonnet-4-6 skipped: The model 'claude-sonnet-4-6' has no price for calls run in the US only") == true,
                "\(row.errorMessage ?? "")")
        // Not asking for it, the fallback serves.
        let served = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                      json: Self.message("claude-opus-4-6", geo: nil), requestID: "served")
        #expect(served.status == 200)
        #expect(try h.row("served")?.errorMessage?.hasSuffix("served by fallback model claude-sonnet-4-6") == true)
    }

    @Test("the reservation holds the US-only price unless the request asks for the global geo (a workspace's default may send a call there unasked)")
    func reservation() async throws {
        // max_tokens 1000 at $25 / 1M is $0.025 globally, $0.0275 in the US only; the prompt
        // adds well under $0.001 either way.
        let plans = """
            defaults: { plan: capped }
            plans: { capped: { budget: { daily_usd: "0.0265" } } }
            """
        let h = try ProxyHarness(plansYAML: plans)
        defer { h.shutdown() }
        let us = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                  json: Self.message("claude-opus-4-6", geo: "us", maxTokens: 1000), requestID: "held-us")
        #expect(us.status == 429)
        let message = try #require(try errorObject(us)["message"] as? String)
        #expect(message.hasSuffix("up to 1000 output tokens at claude-opus-4-6 us-only@2025-11-01's prices."), "\(message)")
        #expect(try h.row("held-us")?.outcome == .refusedQuota)
        #expect(try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                 json: Self.message("claude-opus-4-6", geo: nil, maxTokens: 1000), requestID: "held").status == 429)
        #expect(try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                 json: Self.message("claude-opus-4-6", geo: "global", maxTokens: 1000), requestID: "global").status == 200)
    }
}

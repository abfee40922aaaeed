import FakeLLM
import Foundation
import Ledger
import Metering
import Testing
@testable import Gateway

/// Prices of a service tier or a long prompt (prices.yaml `tier`, `above_input_tokens`): the
/// tier the answer reports, else the one asked for, and the prompt's size pick the price. And
/// the fee of each web search a server-side tool made (`web_search`).
@Suite("Service tiers, long prompts and web search fees")
struct PriceTierTests {
    static func chat(tier: String?) -> String {
        #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]"# + (tier.map { #","service_tier":"\#($0)""# } ?? "") + "}"
    }

    static func answer(tier: String?) -> [UInt8] {
        let body = #"{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","#
            + (tier.map { #""service_tier":"\#($0)","# } ?? "")
            + #""choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#
        return UpstreamHostileTests.response(body)
    }

    /// One call through a canned OpenAI provider: its row.
    static func call(asking: String?, served: String?, id: String, plans: String = "") async throws -> (status: Int, row: LedgerEntry?, message: String?) {
        let canned = try CannedProvider([answer(tier: served)])
        defer { canned.shutdown() }
        let h = try UpstreamHostileTests.harness(canned, plans: plans)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat(tier: asking), requestID: id)
        let message = r.status == 200 ? nil : try errorObject(r)["message"] as? String
        return (r.status, try h.row(id), message)
    }

    static let standardCost: Int64 = 10 * 150_000 + 5 * 600_000
    static let priorityCost: Int64 = 10 * 250_000 + 5 * 1_000_000

    @Test("a call served at priority is charged the priority price, whether it asked or its project's default did")
    func priority() async throws {
        for asking in ["priority", nil] as [String?] {
            let (status, row, _) = try await Self.call(asking: asking, served: "priority", id: "p-\(asking ?? "auto")")
            #expect(status == 200)
            #expect(row?.cost.picodollars == Self.priorityCost)
            #expect(row?.price?.id == "gpt-4o-mini priority@2024-07-18")
            #expect(row?.errorMessage == nil)
        }
    }

    @Test("a priority call the provider served at the standard tier is charged the standard price")
    func downgraded() async throws {
        let (status, row, _) = try await Self.call(asking: "priority", served: "default", id: "down")
        #expect(status == 200)
        #expect(row?.cost.picodollars == Self.standardCost)
        #expect(row?.price?.id == "gpt-4o-mini@2024-07-18")
    }

    @Test("no tier reported: the one asked for")
    func notReported() async throws {
        let (_, row, _) = try await Self.call(asking: "priority", served: nil, id: "silent")
        #expect(row?.cost.picodollars == Self.priorityCost)
    }

    @Test("a tier without a price: asked for, refused before going upstream; reported, charged the standard price and said")
    func unpricedTier() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(tier: "flex"), requestID: "flex")
        #expect(r.status == 400)
        let error = try errorObject(r)
        #expect(error["param"] as? String == "service_tier")
        #expect((error["message"] as? String)?.contains("no price for the service tier 'flex'") == true)
        #expect(try h.row("flex")?.outcome == .refusedUnpriced)
        #expect(h.fake.requestCount == 0)

        // Anthropic's own service_tier chooses capacity, not a price: served at the standard one.
        let anthropic = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                         json: #"{"model":"claude-3-5-haiku-latest","max_tokens":8,"service_tier":"priority","messages":[{"role":"user","content":"hi"}]}"#,
                                         requestID: "anthropic-tier")
        #expect(anthropic.status == 200)

        let (status, row, _) = try await Self.call(asking: nil, served: "flex", id: "flex-served")
        #expect(status == 200)
        #expect(row?.cost.picodollars == Self.standardCost)
        #expect(row?.errorMessage == "served at service tier 'flex', which prices.yaml does not price for 'gpt-4o-mini': charged at the standard price")
    }

    @Test("the reservation holds the price of the tier asked for")
    func reservationAtTierPrice() async throws {
        // max_completion_tokens is injected at the cap (100): the standard worst case is under
        // the budget, the priority one over it.
        let prompt = PromptEstimate.tokens(bodyBytes: Self.chat(tier: "priority").utf8.count)
        let standard = Int64(prompt) * 150_000 + 100 * 600_000
        let priority = Int64(prompt) * 250_000 + 100 * 1_000_000
        let budget = Money(picodollars: (standard + priority) / 2).formatted(decimals: 6)
        let plans = """
            defaults: { plan: capped }
            plans: { capped: { max_output_tokens: 100, budget: { daily_usd: "\(budget)" } } }
            """
        let (status, row, message) = try await Self.call(asking: "priority", served: "priority", id: "held", plans: plans)
        #expect(status == 429, "\(message ?? "")")
        #expect(row?.outcome == .refusedQuota)
        let (plainStatus, _, _) = try await Self.call(asking: nil, served: nil, id: "plain", plans: plans)
        #expect(plainStatus == 200)
    }

    @Test("Anthropic's web searches are charged their fee each, recorded with the row, streamed or not")
    func webSearches() async throws {
        let body = #"{"id":"m1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":100,"output_tokens":50,"server_tool_use":{"web_search_requests":5}}}"#
        let events = [
            #"event: message_start\#ndata: {"type":"message_start","message":{"id":"m2","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":100,"output_tokens":1}}}"#,
            #"event: content_block_delta\#ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}"#,
            #"event: message_delta\#ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":50,"server_tool_use":{"web_search_requests":3}}}"#,
            #"event: message_stop\#ndata: {"type":"message_stop"}"#,
        ].map { $0 + "\n\n" }.joined()
        let stream = Array("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: \(events.utf8.count)\r\nconnection: close\r\n\r\n\(events)".utf8)
        let canned = try CannedProvider(answers: [[UpstreamHostileTests.response(body)], [stream]])
        defer { canned.shutdown() }
        let h = try UpstreamHostileTests.anthropicHarness(canned)
        defer { h.shutdown() }
        let call = #"{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"news?"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]"#
        #expect(try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: call + "}", requestID: "ws").status == 200)
        #expect(try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: call + #","stream":true}"#,
                                 requestID: "ws-stream").status == 200)
        let tokens: Int64 = 100 * 3_000_000 + 50 * 15_000_000
        for (id, searches) in [("ws", 5), ("ws-stream", 3)] {
            let row = try #require(try h.row(id))
            #expect(row.usage.webSearches == searches)
            #expect(row.cost.picodollars == tokens + Int64(searches) * 10_000_000_000, "\(id)")
            #expect(row.price?.webSearch == ModelPrice.defaultWebSearch)
        }
    }

    @Test("the reservation holds the fees of the searches a web search tool may make")
    func reservationHoldsSearches() async throws {
        let answer = UpstreamHostileTests.response(#"{"id":"m1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":5}}"#)
        let canned = try CannedProvider(answers: [[answer]])
        defer { canned.shutdown() }
        // The tokens' worst case ($0.0015 for 100 output tokens and the prompt) fits a budget of
        // $0.02; with five searches ($0.05) it does not, with one ($0.01) it does.
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: capped }
            plans: { capped: { budget: { daily_usd: "0.02" } } }
            """, providersYAML: """
            providers:
              claude: { dialect: anthropic, base_url: "\(canned.baseURL)", api_key_env: E2E_PROVIDER_KEY }
            models:
              - { match: "claude-*", provider: claude }
            """)
        defer { h.shutdown() }
        func call(maxUses: Int, id: String) async throws -> ReceivedResponse {
            let body = #"{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"news?"}],"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":\#(maxUses)}]}"#
            return try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: body, requestID: id)
        }
        let five = try await call(maxUses: 5, id: "five")
        #expect(five.status == 429)
        // The message says what the worst case counts.
        let message = try #require(try errorObject(five)["message"] as? String)
        #expect(message.hasSuffix("up to 100 output tokens and 5 web searches at claude-sonnet-4-*@2025-05-22's prices."), "\(message)")
        #expect(try h.row("five")?.outcome == .refusedQuota)
        #expect(try await call(maxUses: 1, id: "one").status == 200)
    }

    @Test("the image_generation tool, whose images no price covers: refused (refused_unpriced, param tools), or admitted and noted when unpriced models are allowed")
    func imageGenerationTool() async throws {
        let body = #"{"model":"gpt-4o-mini","input":"draw a cat","tools":[{"type":"image_generation","quality":"high"}]}"#
        let refusing = try ProxyHarness()
        defer { refusing.shutdown() }
        let r = try await refusing.post("/v1/responses", key: refusing.aliceKey, json: body, requestID: "img")
        #expect(r.status == 400)
        #expect(try errorObject(r)["param"] as? String == "tools")
        #expect(try refusing.row("img")?.outcome == .refusedUnpriced)
        #expect(refusing.fake.exchange(requestID: "img") == nil)
        let allowing = try ProxyHarness(gatewayYAML: "unpriced_models: allow")
        defer { allowing.shutdown() }
        let a = try await allowing.post("/v1/responses", key: allowing.aliceKey, json: body, requestID: "img-allowed")
        #expect(a.status == 200)
        let row = try #require(try allowing.row("img-allowed"))
        #expect(row.outcome == .ok && row.cost > .zero)
        #expect(row.errorMessage == "the image_generation tool's images are billed apart from the usage the provider reports: not charged here")
    }

    @Test("through FakeLLM: a priority chat, Anthropic and Responses searches, each charged as FakeLLM reported them and counted in /metrics")
    func throughFakeLLM() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-web-searches": "4"])
        defer { h.shutdown() }
        let calls: [(id: String, path: String, dialect: String, body: String)] = [
            ("fk-priority", "/v1/chat/completions", "openai", Self.chat(tier: "priority")),
            ("fk-messages", "/v1/messages", "anthropic", #"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"news?"}]}"#),
            ("fk-responses", "/v1/responses", "openai", #"{"model":"gpt-4o-mini","input":"news?","stream":true}"#),
        ]
        for call in calls {
            let r = try await h.post(call.path, key: h.aliceKey, dialect: call.dialect, json: call.body, requestID: call.id)
            #expect(r.status == 200, "\(call.id)")
        }
        func expected(_ id: String) throws -> FakeUsage {
            let exchange = try #require(h.fake.exchange(requestID: id))
            return try #require(FakeUsage.expected(for: exchange))
        }
        let priority = try expected("fk-priority")
        let p = try #require(try h.row("fk-priority"))
        #expect(p.price?.id == "gpt-4o-mini priority@2024-07-18")
        #expect(p.cost.picodollars == Int64(priority.promptTokens) * 250_000 + Int64(priority.outputTokens) * 1_000_000)
        let messages = try expected("fk-messages")
        let m = try #require(try h.row("fk-messages"))
        #expect(messages.webSearches == 4 && m.usage.webSearches == 4)
        #expect(m.cost.picodollars == Int64(messages.uncachedInputTokens) * 3_000_000 + Int64(messages.outputTokens) * 15_000_000
                + 4 * 10_000_000_000)
        let responses = try expected("fk-responses")
        let r = try #require(try h.row("fk-responses"))
        #expect(r.usage.webSearches == 4)
        #expect(r.cost.picodollars == Int64(responses.promptTokens) * 150_000 + Int64(responses.outputTokens) * 600_000
                + 4 * 10_000_000_000)
        // And /metrics counts them by model, as the ledger does.
        h.server.flushLedger()
        let scrape = try await Scrape.of(h)
        #expect(scrape[#"tokenctl_searches_total{model="gpt-4o-mini",kind="web"}"#] == Double(r.usage.webSearches + p.usage.webSearches))
        #expect(scrape[#"tokenctl_searches_total{model="gpt-4o-mini",kind="file"}"#] == 0)
        #expect(scrape.samples.filter { $0.key.hasPrefix("tokenctl_searches_total{") && $0.key.contains(#"kind="web""#) }
                    .values.reduce(0, +) == Double(m.usage.webSearches + r.usage.webSearches + p.usage.webSearches))
    }

    @Test("the Responses API's file search calls are charged their fee each, streamed or not, and reserved")
    func fileSearches() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: capped }
            plans: { capped: { max_output_tokens: 100, budget: { daily_usd: "0.02" } } }
            """, providerHeaders: [FakeHeader.fileSearches: "3"])
        defer { h.shutdown() }
        let tool = #""tools":[{"type":"file_search","vector_store_ids":["vs_1"]}]"#
        // Ten calls reserved ($0.025) do not fit a budget of $0.02; two ($0.005) do.
        let ten = try await h.post("/v1/responses", key: h.aliceKey, json: #"{"model":"gpt-4o-mini","input":"docs?",\#(tool)}"#,
                                   requestID: "fs-ten")
        #expect(ten.status == 429)
        let message = try #require(try errorObject(ten)["message"] as? String)
        #expect(message.hasSuffix("up to 100 output tokens and 10 file searches at gpt-4o-mini@2024-07-18's prices."), "\(message)")
        for (id, stream) in [("fs", false), ("fs-stream", true)] {
            let body = #"{"model":"gpt-4o-mini","input":"docs?","max_tool_calls":2,"stream":\#(stream),\#(tool)}"#
            let r = try await h.post("/v1/responses", key: h.aliceKey, json: body, requestID: id)
            #expect(r.status == 200, "\(id)")
            let exchange = try #require(h.fake.exchange(requestID: id))
            let usage = try #require(FakeUsage.expected(for: exchange))
            let row = try #require(try h.row(id))
            #expect(row.usage.fileSearches == 3 && usage.fileSearches == 3)
            #expect(row.cost.picodollars == Int64(usage.promptTokens) * 150_000 + Int64(usage.outputTokens) * 600_000
                    + 3 * 2_500_000_000, "\(id)")
        }
    }

    @Test("both search tools under one max_tool_calls: the reservation holds that many searches in all, the dearer (web) first")
    func sharedToolCallReservation() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: capped }
            plans: { capped: { max_output_tokens: 100, budget: { daily_usd: "0.021" } } }
            """)
        defer { h.shutdown() }
        let tools = #""tools":[{"type":"web_search"},{"type":"file_search","vector_store_ids":["vs_1"]}]"#
        // Two calls in all: two web searches ($0.02), not two of each ($0.025).
        let two = try await h.post("/v1/responses", key: h.aliceKey,
                                   json: #"{"model":"gpt-4o-mini","input":"docs?","max_tool_calls":2,\#(tools)}"#, requestID: "two")
        #expect(two.status == 200)
        let three = try await h.post("/v1/responses", key: h.aliceKey,
                                     json: #"{"model":"gpt-4o-mini","input":"docs?","max_tool_calls":3,\#(tools)}"#, requestID: "three")
        #expect(three.status == 429)
        let message = try #require(try errorObject(three)["message"] as? String)
        #expect(message.hasSuffix("up to 100 output tokens and 3 web searches at gpt-4o-mini@2024-07-18's prices."), "\(message)")
    }

    @Test("a stream cut after its searches, before its usage: the searches it showed finished are billed with its estimate")
    func searchesOfACutStream() async throws {
        let h = try ProxyHarness(providerHeaders: [FakeHeader.fail: FakeFailure.cutMidStream.rawValue, FakeHeader.chunks: "20",
                                                   FakeHeader.webSearches: "2", FakeHeader.fileSearches: "1"])
        defer { h.shutdown() }
        // FakeLLM cuts after half of its events: past the searches (and Anthropic's first text).
        let calls: [(id: String, path: String, dialect: String, body: String, web: Int, file: Int, fee: Int64)] = [
            ("cut-responses", "/v1/responses", "openai",
             #"{"model":"gpt-4o-mini","input":"news?","stream":true,"tools":[{"type":"web_search"},{"type":"file_search","vector_store_ids":["vs_1"]}]}"#,
             2, 1, 2 * 10_000_000_000 + 2_500_000_000),
            ("cut-messages", "/v1/messages", "anthropic",
             #"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"news?"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}"#,
             2, 0, 2 * 10_000_000_000),
        ]
        for call in calls {
            _ = try? await h.post(call.path, key: h.aliceKey, dialect: call.dialect, json: call.body, requestID: call.id)
            let row = try #require(try await h.awaitRow(call.id))
            #expect(row.outcome == .upstreamError && row.usageSource == .estimated, "\(call.id)")
            #expect(row.usage.webSearches == call.web && row.usage.fileSearches == call.file, "\(call.id)")
            let price = try #require(row.price)
            #expect(row.cost == price.cost(of: row.usage), "\(call.id)")
            var tokensOnly = row.usage
            (tokensOnly.webSearches, tokensOnly.fileSearches) = (0, 0)
            #expect(row.cost.picodollars - (price.cost(of: tokensOnly)?.picodollars ?? 0) == call.fee, "\(call.id)")
        }
        // Cut after the searches, before any text: the prompt estimate and the searches.
        let early = try ProxyHarness(providerHeaders: [FakeHeader.fail: FakeFailure.cutMidStream.rawValue, FakeHeader.chunks: "12",
                                                       FakeHeader.webSearches: "2", FakeHeader.fileSearches: "1"])
        defer { early.shutdown() }
        _ = try? await early.post(calls[0].path, key: early.aliceKey, json: calls[0].body, requestID: "cut-early")
        let row = try #require(try await early.awaitRow("cut-early"))
        #expect(row.usageSource == .estimated && row.usage.outputTokens == 0 && row.usage.inputTokens > 0)
        #expect(row.usage.webSearches == 2 && row.usage.fileSearches == 1)
        #expect(row.cost == row.price?.cost(of: row.usage))
    }

    @Test("a Responses stream that fails after its searches, before any text, is billed the searches alone")
    func searchesOfAFailedStream() async throws {
        let events = [
            #"event: response.created\#ndata: {"type":"response.created","response":{"id":"r","model":"gpt-4o-mini","output":[],"usage":null}}"#,
            #"event: response.web_search_call.completed\#ndata: {"type":"response.web_search_call.completed","output_index":0,"item_id":"ws_1"}"#,
            #"event: response.web_search_call.completed\#ndata: {"type":"response.web_search_call.completed","output_index":1,"item_id":"ws_2"}"#,
            // Its output lists a file search whose completed event never came: billed too.
            #"event: response.failed\#ndata: {"type":"response.failed","response":{"id":"r","model":"gpt-4o-mini","status":"failed","error":{"code":"server_error","message":"The model failed."},"output":[{"type":"web_search_call","id":"ws_1"},{"type":"file_search_call","id":"fs_1"}],"usage":null}}"#,
        ].map { $0 + "\n\n" }.joined()
        let stream = Array("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: \(events.utf8.count)\r\nconnection: close\r\n\r\n\(events)".utf8)
        let canned = try CannedProvider(answers: [[stream]])
        defer { canned.shutdown() }
        let h = try UpstreamHostileTests.harness(canned)
        defer { h.shutdown() }
        let body = #"{"model":"gpt-4o-mini","input":"news?","stream":true,"tools":[{"type":"web_search"}]}"#
        #expect(try await h.post("/v1/responses", key: h.aliceKey, json: body, requestID: "failed").status == 200)
        let row = try #require(try await h.awaitRow("failed"))
        #expect(row.outcome == .upstreamError && row.errorMessage == "The model failed.")
        #expect(row.usage == Usage(webSearches: 2, fileSearches: 1) && row.usageSource == .estimated)
        #expect(row.cost.picodollars == 2 * 10_000_000_000 + 2_500_000_000)
    }

    @Test("the older web_search_preview tool's searches are charged its fee ($25 per 1,000 here), the current tool's $10")
    func previewSearches() async throws {
        let h = try ProxyHarness(providerHeaders: [FakeHeader.webSearches: "2"])
        defer { h.shutdown() }
        for (id, tool, fee) in [("preview", "web_search_preview", Int64(25_000_000_000)), ("current", "web_search", 10_000_000_000)] {
            let body = #"{"model":"gpt-4o-mini","input":"news?","tools":[{"type":"\#(tool)"}]}"#
            #expect(try await h.post("/v1/responses", key: h.aliceKey, json: body, requestID: id).status == 200)
            let exchange = try #require(h.fake.exchange(requestID: id))
            let usage = try #require(FakeUsage.expected(for: exchange))
            let row = try #require(try h.row(id))
            #expect(row.usage.webSearches == 2 && row.price?.webSearch.picodollars == fee, "\(id)")
            #expect(row.cost.picodollars == Int64(usage.promptTokens) * 150_000 + Int64(usage.outputTokens) * 600_000 + 2 * fee, "\(id)")
        }
    }

    @Test("an Anthropic prompt over 200K tokens (cache reads and writes counted) is charged the long-context price on every token")
    func longContext() async throws {
        func answer(input: Int, read: Int) -> [UInt8] {
            UpstreamHostileTests.response(#"{"id":"m1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":\#(input),"cache_read_input_tokens":\#(read),"cache_creation_input_tokens":1000,"output_tokens":50}}"#)
        }
        let canned = try CannedProvider(answers: [[answer(input: 139_000, read: 60_000)], [answer(input: 140_000, read: 60_000)]])
        defer { canned.shutdown() }
        let h = try UpstreamHostileTests.anthropicHarness(canned)
        defer { h.shutdown() }
        let body = #"{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#
        for id in ["at-200k", "over-200k"] {
            let r = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: body, requestID: id)
            #expect(r.status == 200)
        }
        let at = try #require(try h.row("at-200k"))
        #expect(at.cost.picodollars == 139_000 * 3_000_000 + 60_000 * 300_000 + 1000 * 3_750_000 + 50 * 15_000_000)
        let over = try #require(try h.row("over-200k"))
        #expect(over.price?.id == "claude-sonnet-4-* above-200000@2025-05-22")
        #expect(over.cost.picodollars == 140_000 * 6_000_000 + 60_000 * 600_000 + 1000 * 7_500_000 + 50 * 22_500_000)
    }
}

import FakeLLM
import Foundation
import Ledger
import Metering
import Testing

/// Every refusal: the right status, a body in the caller's dialect naming the problem, a ledger
/// row with the refusal's outcome, and the process still serving afterwards.
@Suite("Refusals and upstream failures")
struct RefusalTests {
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
    static let message = #"{"model":"claude-3-5-haiku-20241022","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#

    /// providers.yaml routing gpt-* to port 1 on loopback: nothing listens there, so a connect is
    /// refused at once.
    static func downProvider(keyVariable: String = "E2E_PROVIDER_KEY") -> String {
        """
        providers:
          openai: { dialect: openai, base_url: "http://127.0.0.1:1/v1", api_key_env: \(keyVariable) }
        models:
          - { match: "gpt-*", provider: openai }
        """
    }

    @Test("missing and invalid keys get 401 in each dialect")
    func authentication() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let missing = try await h.post("/v1/chat/completions", key: nil, json: Self.chat, requestID: "auth-1")
        #expect(missing.status == 401)
        #expect(try errorObject(missing)["code"] as? String == "invalid_api_key")
        let wrong = try await h.post("/v1/chat/completions", key: "tk-" + String(repeating: "x", count: 43),
                                     json: Self.chat, requestID: "auth-2")
        #expect(wrong.status == 401)
        let anthropic = try await h.post("/v1/messages", key: "not-a-key", dialect: "anthropic", json: Self.message,
                                         requestID: "auth-3")
        #expect(anthropic.status == 401)
        let body = try jsonObject(anthropic)
        #expect(body["type"] as? String == "error")
        #expect((body["error"] as? [String: Any])?["type"] as? String == "authentication_error")
        for id in ["auth-1", "auth-2", "auth-3"] {
            let row = try #require(try h.row(id))
            #expect(row.outcome == .refusedAuth)
            #expect(row.status == 401)
            #expect(row.user == nil)
        }
        #expect(h.fake.requestCount == 0)
    }

    @Test("malformed JSON and wrong field types get 400 naming the problem")
    func badInput() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        // The row names the model when the body named one and another field was the problem.
        let cases: [(String, String, String, String?)] = [
            ("bad-1", #"{"model":"gpt-4o-mini","messages":[}"#, "JSON", nil),
            ("bad-2", #"{"model":42,"messages":[]}"#, "model", nil),
            ("bad-3", #"{"model":"gpt-4o-mini","stream":"yes"}"#, "stream", "gpt-4o-mini"),
            ("bad-4", #"{"messages":[]}"#, "model", nil),
            ("bad-5", #"[1,2,3]"#, "object", nil),
            ("bad-7", #"{"max_tokens":"5","model":"gpt-4o-mini"}"#, "max_tokens", "gpt-4o-mini"),
            ("bad-8", #"{"model":"gpt-4o-mini","model":"gpt-4o"}"#, "model", nil),
            ("bad-9", #"{"stream":"yes","model":"gpt-4o-mini","model":"gpt-4o"}"#, "stream", nil),
            ("bad-10", #"{"model":"gpt-4o-mini","n":"50","max_tokens":100}"#, "'n'", "gpt-4o-mini"),
            // A background response is billed after the call returns, where the gateway cannot see it.
            ("bad-11", #"{"model":"gpt-4o-mini","input":"Write a long novel","background":true}"#, "'background' is not supported", "gpt-4o-mini"),
            ("bad-12", #"{"model":"gpt-4o-mini","stream":true,"input":"Write a long novel","background":true}"#, "'background' is not supported", "gpt-4o-mini"),
        ]
        for (id, body, mentions, model) in cases {
            let path = id == "bad-11" || id == "bad-12" ? "/v1/responses" : "/v1/chat/completions"
            let r = try await h.post(path, key: h.aliceKey, json: body, requestID: id)
            #expect(r.status == 400, "\(id)")
            let message = try errorObject(r)["message"] as? String ?? ""
            #expect(message.contains(mentions), "\(id): \(message)")
            let row = try h.row(id)
            #expect(row?.outcome == .refusedBadRequest, "\(id)")
            #expect(row?.modelRequested == model, "\(id)")
            // And says whether it asked for a stream.
            #expect(row?.stream == (id == "bad-12"), "\(id)")
        }
        let anthropic = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                         json: #"{"model":"#, requestID: "bad-6")
        #expect(anthropic.status == 400)
        #expect(((try jsonObject(anthropic))["error"] as? [String: Any])?["type"] as? String == "invalid_request_error")
        #expect(h.fake.requestCount == 0)
    }

    @Test("a body over max_body_bytes gets 413")
    func tooLarge() async throws {
        let h = try ProxyHarness(gatewayYAML: "max_body_bytes: 2048\n")
        defer { h.shutdown() }
        let big = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":""# + String(repeating: "x", count: 5000) + #""}]}"#
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: big, requestID: "big-1")
        #expect(r.status == 413)
        #expect(try h.row("big-1")?.outcome == .refusedTooLarge)
        #expect(try h.row("big-1")?.user == "alice")
        let ok = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "big-2")
        #expect(ok.status == 200)
    }

    @Test("unrouted model gets 404, routed but unpriced model gets 400")
    func unknownAndUnpricedModels() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let unknown = try await h.post("/v1/chat/completions", key: h.aliceKey,
                                       json: #"{"model":"llama-9","messages":[]}"#, requestID: "model-1")
        #expect(unknown.status == 404)
        #expect(try errorObject(unknown)["code"] as? String == "model_not_found")
        #expect((try errorObject(unknown)["message"] as? String)?.contains("llama-9") == true)
        #expect(try h.row("model-1")?.outcome == .refusedUnknownModel)
        #expect((try errorObject(unknown)["message"] as? String)?.contains("Did you mean") == false)
        // A typo that a glob routes (gpt-*) looks unpriced; one no route takes, unrouted: both name the likely model.
        for (typo, status) in [("gpt-4o-minii", 400), ("o4mini", 404)] {
            let refused = try await h.post("/v1/chat/completions", key: h.aliceKey,
                                           json: #"{"model":"\#(typo)","messages":[]}"#, requestID: "model-\(typo)")
            #expect(refused.status == status)
            #expect((try errorObject(refused)["message"] as? String)?
                .hasSuffix(typo == "o4mini" ? "Did you mean 'o4-mini'?" : "Did you mean 'gpt-4o-mini'?") == true, "\(refused.text)")
        }

        let unpriced = try await h.post("/v1/chat/completions", key: h.aliceKey,
                                        json: #"{"model":"gpt-unpriced","messages":[]}"#, requestID: "model-2")
        #expect(unpriced.status == 400)
        #expect((try errorObject(unpriced)["message"] as? String)?.contains("gpt-unpriced") == true)
        let row = try #require(try h.row("model-2"))
        #expect(row.outcome == .refusedUnpriced)
        #expect(row.user == "alice")
        #expect(row.modelRequested == "gpt-unpriced")
        // Who pays is known before the model is checked, the provider once it is routed.
        #expect(row.plan == "unlimited" && row.provider == "openai")
        #expect(try h.row("model-1")?.plan == "unlimited")
        #expect(try h.row("model-1")?.provider == nil)

        // Priced from a later day only (a date typed a year ahead): the refusal says so.
        let later = #"- { model: "gpt-later", effective_from: "2999-01-01", input: "1", output: "2", source: test }"#
        try h.writePolicy("prices.yaml", ProxyHarness.prices + "\n" + later + "\n")
        #expect(h.server.reloadPolicy())
        let before = Day.today()
        let notYet = try await h.post("/v1/chat/completions", key: h.aliceKey,
                                      json: #"{"model":"gpt-later","messages":[]}"#, requestID: "model-3")
        #expect(notYet.status == 400)
        let said = try errorObject(notYet)["message"] as? String
        // Either side of midnight.
        #expect([before, Day.today()].contains { said == "The model 'gpt-later' has no price in effect today (\($0), UTC) in prices.yaml: its first is from 2999-01-01, so its cost cannot be accounted; the gateway refuses unpriced models." }, "\(said ?? "")")
        #expect(h.fake.requestCount == 0)
    }

    @Test("a provider whose key the gateway lacks gets 502 naming the variable, recorded against the provider and plan")
    func providerKeyMissing() async throws {
        let h = try ProxyHarness(plansYAML: "defaults: { plan: team }\nplans: { team: {} }\n",
                                 providersYAML: Self.downProvider(keyVariable: "TOKENCTL_TEST_UNSET_KEY"))
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "nokey-1")
        #expect(r.status == 502)
        let message = try errorObject(r)["message"] as? String ?? ""
        #expect(message.contains("'openai'") && message.contains("TOKENCTL_TEST_UNSET_KEY"), "\(message)")
        let row = try #require(try h.row("nokey-1"))
        #expect(row.outcome == .upstreamUnreachable && row.status == 502)
        #expect(row.user == "alice" && row.team == "research" && row.plan == "team" && row.provider == "openai")
        #expect(row.modelRequested == "gpt-4o-mini" && row.cost == .zero)
    }

    @Test("unknown routes get 404 in the guessed dialect")
    func unknownRoute() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let r = try await h.post("/v1/images/generations", key: h.aliceKey, json: "{}", requestID: "route-1")
        #expect(r.status == 404)
        #expect(try h.row("route-1")?.outcome == .refusedNotFound)
        #expect(try h.row("route-1")?.user == "alice")
        #expect(r.text.contains("Unknown route POST /v1/images/generations.") && !r.text.contains("Did you mean"), "\(r.text)")
        // A base URL without /v1 (OpenAI's SDKs) or with it (Anthropic's): the 404 says how to fix it.
        let short = try await h.post("/chat/completions", key: h.aliceKey, json: "{}", requestID: "route-3")
        #expect(short.status == 404 && short.text.contains("Did you mean /v1/chat/completions?")
                && short.text.contains("http://HOST:PORT/v1"), "\(short.text)")
        let doubled = try await TestHTTPClient.send(port: h.port, method: .POST, path: "/v1/v1/messages",
                                                    headers: [("x-api-key", h.aliceKey), ("anthropic-version", "2023-06-01")],
                                                    body: Array("{}".utf8))
        #expect(doubled.status == 404 && doubled.text.contains(#""type":"not_found_error""#)
                && doubled.text.contains("The path has /v1 twice"), "\(doubled.text)")
        let models = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/models",
                                                   headers: [("authorization", "Bearer \(h.aliceKey)")])
        #expect(models.status == 404 && models.text.contains("Did you mean /v1/models?"), "\(models.text)")
        // The path is the caller's: the answer quotes at most 200 bytes of it, hint or not.
        let long = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/models/" + String(repeating: "m", count: 5_000),
                                                 headers: [("authorization", "Bearer \(h.aliceKey)"), ("x-request-id", "route-4")])
        #expect(long.status == 404 && long.text.contains("Did you mean /v1/models/mmm") && long.text.count < 1_000, "\(long.text.count)")
        #expect(try #require(try h.row("route-4")).errorMessage?.count ?? 0 < 1_000)
        // A route of another method is no hint: POST /models/x is not POST /v1/models/x.
        let post = try await h.post("/models/x", key: h.aliceKey, json: "{}", requestID: "route-5")
        #expect(post.status == 404 && !post.text.contains("Did you mean"), "\(post.text)")
        let get = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/v1/chat/completions",
                                                headers: [("authorization", "Bearer \(h.aliceKey)"), ("x-request-id", "route-2")])
        #expect(get.status == 405)
        #expect(get.header("allow") == "POST")
        for path in ["/healthz", "/metrics", "/dashboard", "/v1/models"] {
            let post = try await TestHTTPClient.send(port: h.port, method: .POST, path: path,
                                                     headers: [("authorization", "Bearer \(h.aliceKey)")])
            #expect(post.status == 405, "\(path)")
            #expect(post.header("allow") == "GET, HEAD", "\(path)")
        }
        // HEAD: the GET's head, content-length included, and no body.
        for path in ["/healthz", "/metrics"] {
            let client = try RawSocketClient(port: h.port)
            #expect(client.send("HEAD \(path) HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"))
            let (bytes, closed) = await client.readUntilClosed()
            client.close()
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(closed && RawSocketClient.statuses(bytes) == [200], "\(path): \(text)")
            #expect(text.lowercased().contains("content-length: "), "\(path)")
            #expect(text.hasSuffix("\r\n\r\n"), "\(path): a body followed the head")
        }
    }

    @Test("an unreachable upstream gets 502, recorded")
    func upstreamUnreachable() async throws {
        let h = try ProxyHarness(providersYAML: Self.downProvider())
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "down-1")
        #expect(r.status == 502)
        #expect(try errorObject(r)["type"] as? String == "api_error")
        let row = try #require(try h.row("down-1"))
        #expect(row.outcome == .upstreamUnreachable)
        #expect(row.status == 502)
    }

    @Test("upstream errors are passed through with their body (an HTML page as a JSON error) and recorded", arguments: [
        ("http-500", 500), ("http-429", 429), ("html-502", 502), ("http-400", 400),
    ])
    func upstreamErrorsPassThrough(failure: String, status: Int) async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-fail": failure])
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "fail-1")
        let exchange = try #require(h.fake.exchange(requestID: "fail-1"))
        #expect(r.status == status)
        if failure == "html-502" {
            #expect(try errorObject(r)["message"] as? String
                    == "Provider 'openai' answered HTTP 502 (text/html, not a JSON error): 502 Bad Gateway nginx")
        } else {
            #expect(r.body == exchange.responseBody)
        }
        let row = try #require(try h.row("fail-1"))
        #expect(row.outcome == .upstreamError)
        #expect(row.status == status)
        #expect(row.cost == .zero)
        let again = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: Self.message,
                                     requestID: "fail-2")
        #expect(again.status == status)
    }

    /// Anthropic's `message_start` gives the input count; an `error` event before any text is
    /// still a failure the provider does not bill.
    @Test("an Anthropic stream ending with an error event before any text is upstream_error, not billed")
    func anthropicErrorBeforeText() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-fail": "error-mid-stream", "x-fake-chunks": "0"])
        defer { h.shutdown() }
        let body = #"{"model":"claude-sonnet-4-5","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#
        let r = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: body, requestID: "err-first")
        #expect(r.status == 200 && r.text.contains("overloaded_error"))
        let row = try #require(try h.row("err-first"))
        #expect(row.outcome == .upstreamError && row.errorMessage == "Overloaded")
        #expect(row.usageSource == .none && row.usage.inputTokens == 0 && row.cost == .zero)
    }

    @Test("a stream cut by the provider is recorded and the client connection is closed, not completed")
    func streamCutMidway() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-fail": "cut-mid-stream"])
        defer { h.shutdown() }
        let body = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: body, requestID: "cut-1")
        #expect(r.status == 200)
        #expect(!r.complete)
        let row = try #require(try h.row("cut-1"))
        #expect(row.outcome == .upstreamError)
        #expect(row.errorMessage != nil)
        #expect(row.usageSource == .estimated && row.usage.outputTokens > 0)
    }

    /// Cut by the connection (the client's stream cut too), or ended by an `error` event (relayed
    /// whole, the provider's message kept): both failures, `upstream_error`, and either way
    /// message_start's output count (a placeholder) is not the usage.
    @Test("an Anthropic stream that stops before its message_delta is billed for the text sent, as a failure",
          arguments: [("cut-mid-stream", false, "transfer closed"), ("error-mid-stream", true, "Overloaded")])
    func anthropicStreamStoppedEarly(failure: String, relayedWhole: Bool, message: String) async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-fail": failure])
        defer { h.shutdown() }
        let body = #"{"model":"claude-sonnet-4-5","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#
        let r = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: body, requestID: "early")
        #expect(r.status == 200)
        #expect(r.complete == relayedWhole)
        let deltas = String(decoding: r.body, as: UTF8.self).components(separatedBy: "event: content_block_delta").count - 1
        #expect(deltas > 1)
        let row = try #require(try h.row("early"))
        #expect(row.outcome == .upstreamError)
        #expect(row.usageSource == .estimated)
        #expect(row.usage.outputTokens >= deltas, "\(row.usage)")
        #expect(row.usage.inputTokens > 0)  // message_start's count, not an estimate
        #expect(row.cost > .zero)
        #expect(row.errorMessage?.contains(message) == true, "\(row.errorMessage ?? "")")
    }
}

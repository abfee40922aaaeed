import FakeLLM
import Foundation
import Ledger
import Metering
import Testing
@testable import Gateway

/// Upstream-side bad input: answers FakeLLM never gives, from a canned provider. Each gets a
/// clear answer for the client, a consistent ledger row, and no crash.
@Suite("Broken provider answers")
struct UpstreamHostileTests {
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
    static let stream = #"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#

    static func response(status: String = "200 OK", contentType: String = "application/json", _ body: String) -> [UInt8] {
        Array("HTTP/1.1 \(status)\r\ncontent-type: \(contentType)\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)".utf8)
    }

    static func streamHead() -> [UInt8] {
        Array("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n".utf8)
    }

    /// A harness whose OpenAI provider is `canned`.
    static func harness(_ canned: CannedProvider, scheme: String = "http", options: String = "",
                        plans: String = "") throws -> ProxyHarness {
        try harness(port: canned.port, scheme: scheme, options: options, plans: plans)
    }

    static func harness(port: Int, scheme: String = "http", options: String = "", plans: String = "") throws -> ProxyHarness {
        try ProxyHarness(plansYAML: plans, providersYAML: """
            providers:
              openai: { dialect: openai, base_url: "\(scheme)://127.0.0.1:\(port)/v1", api_key_env: E2E_PROVIDER_KEY\(options.isEmpty ? "" : ", " + options) }
            models:
              - { match: "gpt-*", provider: openai }
            """)
    }

    /// A harness whose Anthropic provider (for `claude-*`) is `canned`.
    static func anthropicHarness(_ canned: CannedProvider) throws -> ProxyHarness {
        try ProxyHarness(providersYAML: """
            providers:
              claude: { dialect: anthropic, base_url: "\(canned.baseURL)", api_key_env: E2E_PROVIDER_KEY }
            models:
              - { match: "claude-*", provider: claude }
            """)
    }

    /// One chat call through a canned provider whose answer carries `usage`: the answer's text,
    /// what the client got, and the call's row.
    static func call(answeringUsage usage: String, requestID: String) async throws
        -> (text: String, response: ReceivedResponse, row: LedgerEntry) {
        let text = body(usage: usage)
        let canned = try CannedProvider([response(text)])
        defer { canned.shutdown() }
        let h = try harness(canned)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: requestID)
        return (text, r, try #require(try h.row(requestID)))
    }

    static func body(usage: String) -> String {
        #"{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, friend"},"finish_reason":"stop"}],"usage":"# + usage + "}"
    }

    @Test("missing, negative or absurd usage: the answer is relayed, the row is ok with estimated tokens", arguments: [
        "null", #"{"prompt_tokens":-5,"completion_tokens":3,"total_tokens":-2}"#,
        #"{"prompt_tokens":100000000000000,"completion_tokens":5,"total_tokens":100000000000005}"#,
        #"{"prompt_tokens":"many","completion_tokens":5}"#,
    ])
    func badUsage(_ usage: String) async throws {
        let (text, r, row) = try await Self.call(answeringUsage: usage, requestID: "usage")
        #expect(r.status == 200)
        #expect(r.text == text)
        #expect(row.outcome == .ok)
        #expect(row.usageSource == .estimated)
        #expect(row.usage.inputTokens == PromptEstimate.tokens(bodyBytes: Self.chat.utf8.count))
        #expect(row.usage.outputTokens == OutputEstimate.tokens(textBytes: "Hello there, friend".utf8.count, textEvents: 1))
        #expect(row.cost.picodollars == Int64(row.usage.inputTokens) * 150_000 + Int64(row.usage.outputTokens) * 600_000)
        #expect(row.errorMessage?.contains("no usable usage") == true)
    }

    @Test("a usage without its output count: the provider's input kept, the output estimated from the answer's text")
    func usageWithoutOutputCount() async throws {
        let (text, r, row) = try await Self.call(answeringUsage: #"{"prompt_tokens":40,"total_tokens":40}"#, requestID: "no-out")
        #expect(r.status == 200 && r.text == text)
        #expect(row.outcome == .ok && row.usageSource == .estimated)
        #expect(row.usage.inputTokens == 40)
        #expect(row.usage.outputTokens == OutputEstimate.tokens(textBytes: "Hello there, friend".utf8.count, textEvents: 1))
        #expect(row.cost.picodollars == 40 * 150_000 + Int64(row.usage.outputTokens) * 600_000)
        #expect(row.errorMessage == "the provider reported no output count; output tokens estimated from the text sent")
    }

    @Test("an explicit output count of 0 is the provider's word (an echo-only completion), not re-estimated from the text")
    func explicitZeroOutput() async throws {
        let (_, r, row) = try await Self.call(answeringUsage: #"{"prompt_tokens":400,"completion_tokens":0,"total_tokens":400}"#,
                                              requestID: "zero-out")
        #expect(r.status == 200)
        #expect(row.usageSource == .provider && row.usage.outputTokens == 0 && row.usage.inputTokens == 400)
        #expect(row.cost.picodollars == 400 * 150_000)
        #expect(row.errorMessage == nil)
    }

    @Test("the provider's hop-by-hop and account headers stay here, in any case; its x-request-id comes as x-upstream-request-id")
    func providerHeadersFiltered() async throws {
        let text = Self.body(usage: #"{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}"#)
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(text.utf8.count)\r\n"
            + "Set-Cookie: session=1\r\nOpenAI-Organization: org-secret\r\nKeep-Alive: timeout=5\r\n"
            + "X-Request-ID: up-77\r\nX-Provider-Note: kept\r\nConnection: close\r\n\r\n"
        let canned = try CannedProvider([Array((head + text).utf8)])
        defer { canned.shutdown() }
        let h = try Self.harness(canned)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "hdr-1")
        #expect(r.status == 200)
        #expect(r.text == text)
        for name in ["set-cookie", "openai-organization", "keep-alive"] { #expect(r.header(name) == nil, "\(name)") }
        #expect(r.header("x-upstream-request-id") == "up-77")
        #expect(r.headers.filter { $0.0.lowercased() == "x-request-id" }.map(\.1) == ["hdr-1"])
        #expect(r.header("x-provider-note") == "kept")
        #expect(r.header("content-type") == "application/json")
    }

    @Test("a non-JSON 200 is passed through, an HTML error page answered as a JSON error; both recorded")
    func notJSON() async throws {
        let page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
        let canned = try CannedProvider([Self.response(status: "502 Bad Gateway", contentType: "text/html", page)])
        defer { canned.shutdown() }
        let h = try Self.harness(canned)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "html")
        #expect(r.status == 502)
        #expect(r.header("content-type") == "application/json")
        let said = "Provider 'openai' answered HTTP 502 (text/html, not a JSON error): 502 Bad Gateway"
        #expect(try errorObject(r)["message"] as? String == said)
        #expect(try errorObject(r)["code"] as? String == "upstream_error")
        let row = try #require(try h.row("html"))
        #expect(row.outcome == .upstreamError && row.status == 502)
        #expect(row.errorMessage?.hasPrefix(said) == true)

        let garbage = try CannedProvider([Self.response("this is not json")])
        defer { garbage.shutdown() }
        let g = try Self.harness(garbage)
        defer { g.shutdown() }
        let r2 = try await g.post("/v1/chat/completions", key: g.aliceKey, json: Self.chat, requestID: "garbage")
        #expect(r2.status == 200 && r2.text == "this is not json")
        let row2 = try #require(try g.row("garbage"))
        #expect(row2.outcome == .upstreamError)   // not a complete JSON answer
        // A 200 the provider answered, maybe cut short: billed from the request, as a cut stream is.
        #expect(row2.usageSource == .estimated && row2.usage.inputTokens == PromptEstimate.tokens(bodyBytes: Self.chat.utf8.count))
        #expect(row2.cost > .zero)
        // An error status is the provider's refusal: not billed.
        #expect(row.usageSource == .none && row.cost == .zero)

        // A 200 that is not JSON (an HTML page: a wrong base_url) is not the provider's answer.
        let welcome = try CannedProvider([Self.response(contentType: "text/html", "<html><body>Welcome</body></html>")])
        defer { welcome.shutdown() }
        let p = try Self.harness(welcome)
        defer { p.shutdown() }
        #expect(try await p.post("/v1/chat/completions", key: p.aliceKey, json: Self.chat, requestID: "page").status == 200)
        let row3 = try #require(try p.row("page"))
        #expect(row3.outcome == .upstreamError && row3.usageSource == .none && row3.cost == .zero)
    }

    /// The SDKs read an error's JSON; a load balancer's or CDN's page in front of a provider is
    /// not. Its status, its text and its `retry-after` reach the client in the caller's dialect.
    @Test("an error page is answered in the caller's dialect with its status, text and retry-after; JSON mislabelled is relayed")
    func errorPageInCallersDialect() async throws {
        let page = """
            <!DOCTYPE html><html><head><title>429 Too Many Requests</title><style>h1 { color: red }</style>
            <script>var s = '<b>not text</b>';</script></head>
            <body><h1>Slow down &amp; retry</h1><!-- upstream: lb-7 --></body></html>
            """
        let head = "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/html; charset=utf-8\r\nretry-after: 7\r\n"
            + "cache-control: no-store\r\nx-ratelimit-remaining-requests: 0\r\n"
        let mislabelled = #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
        let canned = try CannedProvider(answers: [
            [Array((head + "content-length: \(page.utf8.count)\r\n\r\n" + page).utf8)],
            [Self.response(status: "404 Not Found", contentType: "text/plain", "")],
            [Self.response(status: "400 Bad Request", contentType: "text/plain", mislabelled)],
            [Array("HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/html\r\ncontent-encoding: gzip\r\ncontent-length: 4\r\nconnection: close\r\n\r\n\u{1f}\u{8b}\u{8}\u{0}".utf8)],
            [Self.response(status: "503 Service Unavailable", contentType: "application/json", "<html><body>upstream down</body></html>")],
        ])
        defer { canned.shutdown() }
        let h = try Self.anthropicHarness(canned)
        defer { h.shutdown() }
        let call = #"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#
        let r = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: call, requestID: "page-429")
        #expect(r.status == 429)
        #expect(r.header("content-type") == "application/json")
        #expect(r.header("retry-after") == "7" && r.header("x-ratelimit-remaining-requests") == "0")
        #expect(r.header("cache-control") == nil)
        #expect(try jsonObject(r)["type"] as? String == "error")
        let error = try errorObject(r)
        #expect(error["type"] as? String == "rate_limit_error")
        let said = "Provider 'claude' answered HTTP 429 (text/html; charset=utf-8, not a JSON error): Slow down & retry"
        #expect(error["message"] as? String == said)
        let row = try #require(try h.row("page-429"))
        #expect(row.outcome == .upstreamError && row.status == 429 && row.errorMessage == said && row.cost == .zero)

        let empty = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: call, requestID: "page-404")
        #expect(empty.status == 404)
        #expect(try errorObject(empty)["type"] as? String == "not_found_error")
        #expect(try errorObject(empty)["message"] as? String == "Provider 'claude' answered HTTP 404 with an empty body")

        let json = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: call, requestID: "page-json")
        #expect(json.status == 400 && json.text == mislabelled)
        #expect(try h.row("page-json")?.errorMessage == "Overloaded")

        // Compressed unasked: no text to quote, and no content-encoding on the JSON in its place.
        let packed = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: call, requestID: "page-gz")
        #expect(packed.status == 500 && packed.header("content-encoding") == nil)
        #expect(try errorObject(packed)["message"] as? String
                == "Provider 'claude' answered HTTP 500 (text/html, gzip-encoded, not a JSON error)")

        // A page whose content-type says JSON is still a page (read whole before its head goes out).
        let labelled = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: call, requestID: "page-lbl")
        #expect(labelled.status == 503 && labelled.header("content-type") == "application/json")
        #expect(try errorObject(labelled)["type"] as? String == "overloaded_error")
        #expect(try errorObject(labelled)["message"] as? String
                == "Provider 'claude' answered HTTP 503 (application/json, not a JSON error): upstream down")
    }

    /// Close-delimited (the stream ends with the connection) or chunked and cut before its last
    /// chunk (a transport error): either way the provider's error is the story.
    @Test("a stream that ends with the provider's error chunk and its connection's close: upstream_error with its message, not billed",
          arguments: [false, true])
    func streamErrorThenClose(chunked: Bool) async throws {
        let error = #"data: {"error":{"message":"The server had an error processing your request.","type":"server_error"}}"# + "\n\n"
        let writes: [[UInt8]] = chunked
            ? [Array("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".utf8),
               Array((String(error.utf8.count, radix: 16) + "\r\n" + error + "\r\n").utf8)]
            : [Self.streamHead(), Array(error.utf8)]
        let canned = try CannedProvider(writes)
        defer { canned.shutdown() }
        let h = try Self.harness(canned)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.stream, requestID: "err-close")
        #expect(r.status == 200 && !r.complete)
        let row = try #require(try h.row("err-close"))
        #expect(row.outcome == .upstreamError)
        #expect(row.errorMessage == "The server had an error processing your request.")
        #expect(row.usageSource == .none && row.cost == .zero)  // a failure, with no text: not billed
    }

    /// The provider's accept queue is full (a listener that never accepts, its one place taken):
    /// the gateway's connection attempt hangs, and its request never goes out.
    @Test("a call the client leaves before its request went out (the connection still being made) is not billed")
    func leftWhileConnecting() async throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 0) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        #expect(bound)
        defer { Glibc.close(listener) }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let filler = try RawSocketClient(port: port)
        defer { filler.close() }
        let h = try Self.harness(port: port)
        defer { h.shutdown() }
        let start = Date()
        try await RawSocketClient.sendThenHangUp(port: h.port, RawSocketClient.request(key: h.aliceKey, body: Self.chat, requestID: "connecting")) {
            Date().timeIntervalSince(start) > 0.5  // connecting for 0.5 s (the connect timeout is 10 s)
        }
        let recorded = try #require(try await h.awaitRow("connecting"))
        #expect(recorded.outcome == .clientCancelled)
        #expect(recorded.usageSource == .none && recorded.cost == .zero)
    }

    @Test("an SSE event over 1 MiB is relayed intact; memory stays bounded by the meter's limit")
    func hugeEvent() async throws {
        let big = String(repeating: "x", count: 2 << 20)
        let events = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\(big)\"}}]}\n\n"
            + #"data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":9,"total_tokens":16}}"# + "\n\n"
            + "data: [DONE]\n\n"
        let canned = try CannedProvider([Self.streamHead(), Array(events.utf8)])
        defer { canned.shutdown() }
        let h = try Self.harness(canned)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.stream, requestID: "huge-event")
        #expect(r.status == 200)
        #expect(r.text == events)
        let row = try #require(try h.row("huge-event"))
        #expect(row.outcome == .ok)
        #expect(row.usage.inputTokens == 7 && row.usage.outputTokens == 9)
    }

    @Test("a connection reset mid-stream cuts the client off; the row says upstream_unreachable or upstream_error")
    func resetMidStream() async throws {
        let first = #"data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}"# + "\n\n"
        let canned = try CannedProvider([Self.streamHead(), Array(first.utf8)], ending: .reset)
        defer { canned.shutdown() }
        let h = try Self.harness(canned)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.stream, requestID: "reset")
        #expect(!r.complete)
        let row = try #require(try h.row("reset"))
        #expect(canned.requests == 1)   // the client had bytes already: never retried
        #expect(row.outcome == .upstreamError || row.outcome == .upstreamUnreachable)
        #expect(row.usageSource == .estimated)   // "Hello" reached the client
        #expect(row.usage.outputTokens == 2)
    }

    @Test("the provider's 401 (its view of the gateway's key) is not relayed: 502, not to be retried; its 403 is relayed, scrubbed of the key")
    func providerAuthAnswers() async throws {
        let unauthorized = Self.response(status: "401 Unauthorized", #"{"error":{"message":"Incorrect API key provided: provider-secret"}}"#)
        let forbidden = Self.response(status: "403 Forbidden", #"{"error":{"message":"Country, region, or territory not supported","code":"unsupported_country_region_territory"}}"#)
        let canned = try CannedProvider(answers: [[unauthorized], [forbidden]])
        defer { canned.shutdown() }
        let h = try Self.harness(canned)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "p401")
        #expect(r.status == 502 && r.header("x-should-retry") == "false")
        #expect(try errorObject(r)["code"] as? String == "provider_auth_failed")
        #expect(!r.text.contains("Incorrect API key"))
        let f = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "p403")
        #expect(f.status == 403 && f.text.contains("unsupported_country_region_territory"))
        #expect(f.header("x-should-retry") == nil)
        let row = try #require(try h.row("p403"))
        #expect(row.outcome == .upstreamError && row.status == 403 && row.cost == .zero)
    }

    @Test("a TLS handshake failure (https to a plain server) is a 502 in the caller's dialect")
    func tlsFailure() async throws {
        let canned = try CannedProvider([Self.response("{}")])
        defer { canned.shutdown() }
        let h = try Self.harness(canned, scheme: "https")
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "tls")
        #expect(r.status == 502)
        #expect(r.text.contains("upstream_unreachable"))
        #expect(try h.row("tls")?.outcome == .upstreamUnreachable)
    }

    static let okBody = body(usage: #"{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}"#)

    @Test("a 503 before anything reached the client is retried; the client only sees the success")
    func retriedThenServed() async throws {
        let canned = try CannedProvider(answers: [[Self.overloaded], [Self.response(Self.okBody)]])
        defer { canned.shutdown() }
        let h = try Self.harness(canned)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "retry-ok")
        #expect(r.status == 200 && r.text == Self.okBody)
        #expect(canned.requests == 2)
        let row = try #require(try h.row("retry-ok"))
        #expect(row.outcome == .ok && row.usage.inputTokens == 7)
        #expect(row.errorMessage == "after 1 retry (503 from openai)")
        let m = try await Scrape.of(h)
        #expect(m[#"tokenctl_upstream_retries_total{provider="openai",reason="status"}"#] == 1)
        #expect(m[#"tokenctl_upstream_retries_total{provider="openai",reason="connect"}"#] == 0)
    }

    @Test("retries are bounded by the provider's retries; the last answer is passed through")
    func retriesExhausted() async throws {
        let overloaded = Self.response(status: "529 Overloaded", #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
        let canned = try CannedProvider([overloaded])
        defer { canned.shutdown() }
        let h = try Self.harness(canned, options: "retries: 1")
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "retry-529")
        #expect(r.status == 529 && r.text.contains("overloaded_error"))
        #expect(canned.requests == 2)
        let row = try #require(try h.row("retry-529"))
        #expect(row.outcome == .upstreamError)
        #expect(row.errorMessage?.hasSuffix("after 1 retry (529 from openai)") == true)
    }

    @Test("a 500 or a 429 is not retried (only connect errors and 502/503/529 are)")
    func notRetried() async throws {
        for status in ["500 Internal Server Error", "429 Too Many Requests"] {
            let canned = try CannedProvider([Self.response(status: status, #"{"error":{"message":"no"}}"#)])
            defer { canned.shutdown() }
            let h = try Self.harness(canned)
            defer { h.shutdown() }
            let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "no-retry")
            #expect(r.status == Int(status.prefix(3)))
            #expect(canned.requests == 1)
        }
    }

    @Test("connect errors are retried, then answered 502 with the attempts in the row")
    func connectErrorsRetried() async throws {
        let refusing = try RefusingPort()
        let h = try Self.harness(port: refusing.port, options: "retries: 2")
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "retry-connect")
        #expect(r.status == 502)
        let row = try #require(try h.row("retry-connect"))
        #expect(row.outcome == .upstreamUnreachable)
        #expect(row.errorMessage?.hasSuffix("after 2 retries (connect error at openai, connect error at openai)") == true)
        let m = try await Scrape.of(h)
        #expect(m[#"tokenctl_upstream_retries_total{provider="openai",reason="connect"}"#] == 2)
        withExtendedLifetime(refusing) {}  // refusing until here
    }

    @Test("the backoff is jittered and bounded")
    func backoff() {
        #expect(RetryBackoff.delayMillis(attempt: 1, random: { $0.upperBound }) == 100)
        #expect(RetryBackoff.delayMillis(attempt: 2, random: { $0.upperBound }) == 200)
        #expect(RetryBackoff.delayMillis(attempt: 9, random: { $0.upperBound }) == 2_000)
        #expect(RetryBackoff.delayMillis(attempt: 3, random: { $0.lowerBound }) == 0)
        let draws = (0..<200).map { _ in RetryBackoff.delayMillis(attempt: 3) }
        #expect(draws.allSatisfy { (0...400).contains($0) } && Set(draws).count > 10)
    }

    static let overloaded = response(status: "503 Service Unavailable", #"{"error":{"message":"overloaded"}}"#)
    static let backupBody = #"{"id":"c2","object":"chat.completion","model":"o4-mini-2025-04-16","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#

    /// gpt-4o-mini on `primary` (with `retries`), falling back to o4-mini on `backup`.
    static func fallbackHarness(primary: CannedProvider, retries: Int, backup: CannedProvider,
                                plansYAML: String = "") throws -> ProxyHarness {
        try ProxyHarness(plansYAML: plansYAML, providersYAML: """
            providers:
              primary: { dialect: openai, base_url: "http://127.0.0.1:\(primary.port)/v1", api_key_env: E2E_PROVIDER_KEY, retries: \(retries) }
              backup:  { dialect: openai, base_url: "http://127.0.0.1:\(backup.port)/v1", api_key_env: E2E_PROVIDER_KEY }
            models:
              - { match: "gpt-4o-mini", provider: primary, fallbacks: ["o4-mini"] }
              - { match: "o4-mini", provider: backup }
            """)
    }

    @Test("when a provider gives up, the route's fallback model serves the call; the row keeps the model asked for")
    func fallbackModel() async throws {
        let primary = try CannedProvider([Self.overloaded])
        defer { primary.shutdown() }
        let backup = try CannedProvider([Self.response(Self.backupBody)])
        defer { backup.shutdown() }
        let h = try Self.fallbackHarness(primary: primary, retries: 1, backup: backup)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "fallback")
        #expect(r.status == 200 && r.text == Self.backupBody)
        #expect(primary.requests == 2 && backup.requests == 1)
        // The request went to the fallback with only its model replaced.
        let sent = try #require(backup.received.first)
        #expect(sent.hasSuffix(#"{"model":"o4-mini","messages":[{"role":"user","content":"hi"}]}"#))
        let row = try #require(try h.row("fallback"))
        #expect(row.outcome == .ok && row.provider == "backup")
        #expect(row.modelRequested == "gpt-4o-mini" && row.modelServed == "o4-mini-2025-04-16")
        #expect(row.price?.model.text == "o4-mini")   // billed at the fallback's price
        #expect(row.cost.picodollars == 7 * 1_100_000 + 3 * 4_400_000)
        #expect(row.errorMessage == "after 2 retries (503 from primary, 503 from primary); served by fallback model o4-mini")
        let m = try await Scrape.of(h)
        #expect(m[#"tokenctl_upstream_retries_total{provider="primary",reason="status"}"#] == 1)
        #expect(m[#"tokenctl_upstream_fallbacks_total{provider="primary"}"#] == 1)
        #expect(m[#"tokenctl_upstream_fallbacks_total{provider="backup"}"#] == 0)
    }

    /// gpt-4o-mini's worst case here (its prompt and 4,096 output tokens) is about $0.0025,
    /// o4-mini's about $0.018: the fallback needs its reservation grown.
    @Test("a pricier fallback runs only if the payer's budgets take its worst case: the reservation grows, or the fallback is skipped",
          arguments: [("1", true), ("0.01", false)])
    func pricierFallbackNeedsItsWorstCase(dailyUSD: String, served: Bool) async throws {
        let primary = try CannedProvider([Self.overloaded])
        defer { primary.shutdown() }
        let backup = try CannedProvider([Self.response(Self.backupBody)])
        defer { backup.shutdown() }
        let h = try Self.fallbackHarness(primary: primary, retries: 0, backup: backup, plansYAML: """
            defaults: { plan: metered }
            plans: { metered: { budget: { daily_usd: "\(dailyUSD)" } } }
            """)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "pricier")
        let row = try #require(try h.row("pricier"))
        if served {
            #expect(r.status == 200 && backup.requests == 1)
            #expect(row.outcome == .ok && row.provider == "backup" && row.cost.picodollars == 7 * 1_100_000 + 3 * 4_400_000)
        } else {
            #expect(r.status == 503 && backup.requests == 0)  // the primary's answer
            #expect(row.outcome == .upstreamError && row.cost == .zero)
            #expect(row.errorMessage?.contains("fallback o4-mini skipped: its worst case is over the payer's budget") == true,
                    "\(row.errorMessage ?? "")")
        }
        #expect(h.server.openQuotaReservations == 0)
    }

    @Test("an SSE stream torn in the middle of an event: the whole events are relayed, the torn one is not, the row says upstream_error")
    func tornMidEvent() async throws {
        let whole = #"data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}"# + "\n\n"
        let torn = #"data: {"choices":[{"index":0,"delta":{"con"#
        let canned = try CannedProvider([Self.streamHead(), Array((whole + torn).utf8)])
        defer { canned.shutdown() }
        let h = try Self.harness(canned)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.stream, requestID: "torn")
        #expect(r.status == 200)
        #expect(!r.complete)   // cut, never mistaken for a complete answer
        #expect(r.text.hasPrefix(whole))
        let row = try #require(try h.row("torn"))
        #expect(row.outcome == .upstreamError)
        #expect(row.errorMessage?.contains("without its final event") == true)
        #expect(row.usageSource == .estimated && row.usage.outputTokens == 2)   // "Hello" was sent
    }
}

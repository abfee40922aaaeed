import FakeLLM
import FakeLLMTLS
import Foundation
import Ledger
import Policy
import Testing

/// A kept-alive connection that the provider closes just as a call goes out on it: the call is
/// tried again on another connection (HTTP/1.1: by libcurl; HTTP/2: by the gateway), while a
/// failure the provider may have acted on is not.
@Suite("Stale pooled connections")
struct StaleConnectionTests {
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
    /// Routed to the provider that misbehaves (`o4-*`).
    static let flakyChat = chat.replacingOccurrences(of: "gpt-4o-mini", with: "o4-mini")

    /// Two providers on one HTTPS FakeLLM, so they share its connections: `steady` answers
    /// (after 1.5 s, so that calls made together hold a connection each on HTTP/1.1 even when a
    /// loaded machine starts them far apart: 500 ms was once not enough in a full-suite run
    /// beside two builds), `flaky`
    /// sends `x-fake-fail: fail` (and `extra` headers), with no retries of its own.
    static func harness(http2: Bool = true, fail: String = "drop-connection-once",
                        extra: String = "") throws -> ProxyHarness {
        try ProxyHarness(providersForFake: { url in
            """
            providers:
              steady: { dialect: openai, base_url: "\(url)/v1", api_key_env: E2E_PROVIDER_KEY, ca_file: fake-ca.pem,
                        http2: \(http2), headers: { "x-fake-first-byte-delay-ms": "1500" } }
              flaky:  { dialect: openai, base_url: "\(url)/v1", api_key_env: E2E_PROVIDER_KEY, ca_file: fake-ca.pem,
                        http2: \(http2), retries: 0, headers: { "x-fake-fail": "\(fail)"\(extra) } }
            models:
              - { match: "gpt-*", provider: steady }
              - { match: "o4-*", provider: flaky }
            """
        }, fakeTLS: try FakeTLS.generate())
    }

    /// Calls made together that leave `connections` idle connections in the pool (HTTP/1.1: one
    /// per call; HTTP/2: one in all).
    static func warm(_ h: ProxyHarness, connections: Int = 1) async throws {
        try await withThrowingTaskGroup(of: ReceivedResponse.self) { group in
            for i in 0..<connections {
                group.addTask { try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "warm\(i)") }
            }
            for try await warm in group { #expect(warm.status == 200) }
        }
        #expect(h.fake.connectionCount == connections)
    }

    @Test("HTTP/2: a call whose pooled connection the provider closes (or drains, refusing it) is sent again, served and recorded once",
          arguments: ["drop-connection-once", "goaway-once"])
    func http2CallIsSentAgain(ending: String) async throws {
        let h = try Self.harness(fail: ending)
        defer { h.shutdown() }
        try await Self.warm(h)
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.flakyChat, requestID: "stale")
        #expect(r.status == 200, "\(r.text)")
        #expect(r.text.contains("Hello from FakeLLM"))
        // Seen twice (dropped, then answered), on a second connection; `retries: 0` did not stop it.
        #expect(h.fake.requestCount == 3)
        #expect(h.fake.connectionCount == 2)
        #expect(h.fake.exchange(requestID: "stale")?.completed == true)
        let rows = try h.allRows().filter { $0.requestId == "stale" }
        #expect(rows.count == 1)
        let row = try #require(rows.first)
        #expect(row.outcome == .ok && row.status == 200)
        #expect(row.usage.outputTokens == 8 && row.cost.picodollars > 0)
        #expect(row.errorMessage == "after 1 retry (connection to flaky closed before it answered)")
        let m = try await Scrape.of(h)
        #expect(m[#"tokenctl_upstream_retries_total{provider="flaky",reason="stale_connection"}"#] == 1)
    }

    /// Answers wait 1.5 s: longer than a stale connection's window, and long enough for all the
    /// calls in flight to be on the connection when the first of them ends it, even on a loaded
    /// machine.
    static let slowAnswers = #", "x-fake-first-byte-delay-ms": "1500""#

    /// 8 calls on the warm connection, in flight when the first of them ends it.
    static func eightInFlight(_ h: ProxyHarness) async throws -> [String: ReceivedResponse] {
        try await withThrowingTaskGroup(of: (String, ReceivedResponse).self) { group in
            for i in 0..<8 {
                group.addTask {
                    ("f\(i)", try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.flakyChat,
                                               requestID: "f\(i)"))
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
    }

    @Test("HTTP/2: calls the provider had for a while when their connection closed are not sent again (they may be billed)")
    func http2CallsInFlightAreNotSentAgain() async throws {
        let h = try Self.harness(extra: Self.slowAnswers)
        defer { h.shutdown() }
        try await Self.warm(h)
        let responses = try await Self.eightInFlight(h)
        #expect(responses.count == 8)
        for (id, response) in responses {
            #expect(response.status == 502, "\(id): \(response.text)")
            #expect(response.text.contains("before end of the underlying"), "\(id): \(response.text)")
            let row = try #require(try h.row(id))
            #expect(row.outcome == .upstreamUnreachable, "\(id)")
            #expect(row.errorMessage?.contains("retry") == false, "\(id)")
        }
        #expect(h.fake.requestCount == 1 + 8)
    }

    @Test("HTTP/2: calls in flight that a draining provider refuses (GOAWAY) are sent again, however long they waited")
    func http2CallsRefusedByGoAwayAreSentAgain() async throws {
        let h = try Self.harness(fail: "goaway-once", extra: Self.slowAnswers)
        defer { h.shutdown() }
        try await Self.warm(h)
        let responses = try await Self.eightInFlight(h)
        #expect(responses.count == 8)
        for (id, response) in responses {
            #expect(response.status == 200, "\(id): \(response.text)")
            #expect(try h.row(id)?.outcome == .ok, "\(id)")
        }
        #expect(h.fake.requestCount == 1 + 8 * 2)
        // One new connection carries them all: libcurl 7.88 would send each refused call again by
        // itself, on a connection of its own (8 or 9 in all); the connection ramp lets the first
        // of these open one, and the gateway sends the others again on it (their rows say so).
        #expect(h.fake.connectionCount == 2)
        let notes = try responses.keys.compactMap { try h.row($0)?.errorMessage }
        #expect(notes.count >= 7 && notes.allSatisfy { $0 == "after 1 retry (connection to flaky closed before it answered)" },
                "\(notes)")
    }

    @Test("HTTP/1.1: a call the provider had for 1.5 s when its reused connection closed is not sent again (libcurl would), on another pooled connection either",
          arguments: [1, 2])
    func http1CallInFlightIsNotSentAgain(pooled: Int) async throws {
        let h = try Self.harness(http2: false, extra: Self.slowAnswers)
        defer { h.shutdown() }
        try await Self.warm(h, connections: pooled)
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.flakyChat, requestID: "long")
        #expect(r.status == 502)
        #expect(r.text.contains("The connection to provider 'flaky' failed: the connection closed without an answer "),
                "\(r.text)")
        #expect(r.text.contains(" s after the call went out; not sent again, as the provider may have worked on it"), "\(r.text)")
        #expect(h.fake.requestCount == pooled + 1)
        let row = try #require(try h.row("long"))
        #expect(row.outcome == .upstreamUnreachable && row.errorMessage?.contains("retry") == false)
    }

    @Test("HTTP/1.1: within the window, libcurl sends the call again on a new connection by itself")
    func http1CallIsSentAgainByCurl() async throws {
        let h = try Self.harness(http2: false)
        defer { h.shutdown() }
        try await Self.warm(h)
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.flakyChat, requestID: "stale")
        #expect(r.status == 200, "\(r.text)")
        #expect(h.fake.requestCount == 3)
        #expect(h.fake.connectionCount == 2)
        #expect(h.fake.exchange(requestID: "stale")?.httpVersion == "HTTP/1.1")
        let row = try #require(try h.row("stale"))
        #expect(row.outcome == .ok && row.errorMessage == nil)
    }

    @Test("a stream the provider resets on a pooled connection is its answer: 502, not sent again")
    func resetStreamIsNotSentAgain() async throws {
        let h = try Self.harness(fail: "reset-before-headers")
        defer { h.shutdown() }
        try await Self.warm(h)
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.flakyChat, requestID: "reset")
        #expect(r.status == 502)
        #expect(r.text.contains("The connection to provider 'flaky' failed: HTTP/2 stream"), "\(r.text)")
        #expect(r.text.contains("CANCEL"), "\(r.text)")
        #expect(h.fake.requestCount == 2)
        let row = try #require(try h.row("reset"))
        #expect(row.outcome == .upstreamUnreachable)
    }

    @Test("a connection that dies under the call that opened it is the provider's failure: 502, not sent again")
    func newConnectionThatDiesIsNotSentAgain() async throws {
        let h = try Self.harness()
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.flakyChat, requestID: "first")
        #expect(r.status == 502)
        #expect(r.text.contains("before end of the underlying"), "\(r.text)")
        #expect(h.fake.requestCount == 1)
        let row = try #require(try h.row("first"))
        #expect(row.outcome == .upstreamUnreachable)
        #expect(row.errorMessage?.contains("after 1 retry") == false)
    }
}

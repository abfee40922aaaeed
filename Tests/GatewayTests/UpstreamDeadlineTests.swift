import Foundation
import Ledger
import Testing
@testable import Gateway

/// The first-byte and idle deadlines of providers.yaml, as a pure watch and end to end.
@Suite("Upstream deadlines")
struct UpstreamDeadlineTests {
    @Test("the watch: first byte, then idle gaps, paused time not counted")
    func watch() {
        var w = UpstreamWatch(firstByteMs: 100, idleMs: 50, sentAt: 1_000_000)
        #expect(w.verdict(at: 1_000_000) == .checkAt(1_100_000))
        #expect(w.verdict(at: 1_099_999) == .checkAt(1_100_000))
        #expect(w.verdict(at: 1_100_000) == .expired(.firstByte(limitMicros: 100_000)))
        w.head(at: 1_090_000)
        #expect(w.verdict(at: 1_100_000) == .checkAt(1_140_000))
        w.bytes(at: 1_130_000)
        #expect(w.verdict(at: 1_150_000) == .checkAt(1_180_000))
        #expect(w.verdict(at: 1_180_000) == .expired(.idle(limitMicros: 50_000)))
        // Paused by the client for 200 ms: the silence meanwhile is not the provider's.
        w.paused(at: 1_140_000)
        #expect(w.verdict(at: 1_300_000) == .checkAt(1_350_000))
        w.resumed(at: 1_340_000)
        #expect(w.verdict(at: 1_350_000) == .checkAt(1_380_000))
        #expect(w.verdict(at: 1_380_000) == .expired(.idle(limitMicros: 50_000)))
    }

    @Test("no deadlines configured: nothing to watch")
    func inactive() {
        var w = UpstreamWatch(firstByteMs: nil, idleMs: nil, sentAt: 0)
        #expect(!w.isActive)
        #expect(w.verdict(at: 10_000_000) == .done)
        w = UpstreamWatch(firstByteMs: nil, idleMs: 10, sentAt: 0)
        #expect(w.verdict(at: 10_000_000) == .done)  // the idle watch starts with the head
        w.head(at: 10_000_000)
        #expect(w.verdict(at: 10_000_000) == .checkAt(10_010_000))
    }

    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
    static let stream = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
    static let message = #"{"model":"claude-3-5-haiku-latest","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#

    @Test("a provider that sends no head within first_byte_timeout_ms: 504 in each dialect, recorded as timeout")
    func firstByteTimeout() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-first-byte-delay-ms": "3000"],
                                 providerOptions: "first_byte_timeout_ms: 200")
        defer { h.shutdown() }
        // No wall-clock assertion (the suite runs loaded): the row's outcome and message say
        // which deadline ended the call; without it the fake would answer after 3 s with `ok`.
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "fb-openai")
        #expect(r.status == 504)
        #expect(r.text.contains("\"upstream_timeout\"") && r.text.contains("first_byte_timeout_ms"))
        let a = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: Self.message,
                                 requestID: "fb-anthropic")
        #expect(a.status == 504)
        #expect(a.text.contains("\"type\":\"error\"") && a.text.contains("\"timeout_error\""))  // Anthropic's type for 504
        for id in ["fb-openai", "fb-anthropic"] {
            let row = try #require(try h.row(id))
            #expect(row.outcome == .timeout)
            #expect(row.status == 504)
            #expect(row.errorMessage?.contains("first_byte_timeout_ms") == true)
        }
    }

    @Test("a stream that goes silent past idle_timeout_ms is cut and recorded as timeout")
    func idleTimeout() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-chunk-gap-ms": "1500", "x-fake-chunks": "4"],
                                 providerOptions: "idle_timeout_ms: 250")
        defer { h.shutdown() }
        // Without the deadline the stream would complete (`ok`) after 6 s.
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.stream, requestID: "idle-1")
        #expect(r.status == 200)
        #expect(!r.complete)
        let row = try #require(try h.row("idle-1"))
        #expect(row.outcome == .timeout)
        #expect(row.errorMessage?.contains("idle_timeout_ms") == true)
    }

    @Test("a stream with gaps shorter than idle_timeout_ms completes")
    func withinIdleTimeout() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-chunk-gap-ms": "20", "x-fake-chunks": "5"],
                                 providerOptions: "first_byte_timeout_ms: 2000, idle_timeout_ms: 1000")
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.stream, requestID: "idle-ok")
        #expect(r.status == 200)
        #expect(r.complete)
        #expect(try h.row("idle-ok")?.outcome == .ok)
    }

    @Test("timeout_ms (the attempt's whole deadline) passing: 504, recorded as timeout, no retry of a timeout")
    func totalDeadline() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-first-byte-delay-ms": "3000"],
                                 providerOptions: "timeout_ms: 300")
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "total")
        #expect(r.status == 504)
        #expect(r.text.contains("upstream_timeout"))
        let row = try #require(try h.row("total"))
        #expect(row.outcome == .timeout && row.status == 504)
        #expect(row.errorMessage?.contains("retr") != true)   // a deadline is not retried
    }
}

import Foundation
import Ledger
import NIOCore
import NIOPosix
import Policy
import Testing
@testable import Gateway

/// `max_concurrent`, `max_queue` and `queue_timeout_ms` of providers.yaml.
@Suite("Provider slots and wait queue")
struct ProviderGateTests {
    typealias Machine = ProviderGate.StateMachine

    @Test("the state machine: slots, FIFO queue, refusal when full, withdraw, release")
    func stateMachine() {
        var m = Machine(limits: ProviderLimits(maxConcurrent: 2, maxQueue: 2))
        let admissions = (1...5).map { m.acquire(UInt64($0)) }
        #expect(admissions == [.granted, .granted, .queued, .queued, .refused])
        #expect(m.inFlight == 2 && Array(m.waiting) == [3, 4])
        let withdrawn = [m.withdraw(3), m.withdraw(3)]
        #expect(withdrawn == [true, false])
        let handedOn = [m.release(), m.release(), m.release()]
        #expect(handedOn == [4, nil, nil])   // the slot goes to the longest waiter
        #expect(m.inFlight == 0 && m.waiting.isEmpty)
    }

    @Test("a waiter never jumps the queue, and a reload that raises the limit lets waiters through")
    func fifoAndReload() {
        var m = Machine(limits: ProviderLimits(maxConcurrent: 1, maxQueue: 3))
        let admissions = [m.acquire(1), m.acquire(2), m.acquire(3)]
        #expect(admissions == [.granted, .queued, .queued])
        let raised = m.update(ProviderLimits(maxConcurrent: 2, maxQueue: 3))
        #expect(raised == [2])
        let lowered = m.update(ProviderLimits(maxConcurrent: 1, maxQueue: 3))
        #expect(lowered == [])               // lower: nobody is cut off
        let handedOn = [m.release(), m.release()]
        #expect(handedOn == [nil, 3])        // 2 in flight over a limit of 1: the first slot is not handed on
        let unlimited = m.update(.unlimited)
        #expect(unlimited == [])
        let free = m.acquire(9)
        #expect(free == .granted)            // no limit: never queued
    }

    @Test("no limit configured: every call is granted")
    func unlimited() {
        var m = Machine(limits: .unlimited)
        let admissions = (1...1_000).map { m.acquire(UInt64($0)) }
        #expect(admissions.allSatisfy { $0 == .granted })
        #expect(m.inFlight == 1_000)
    }

    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#

    static func waitFor(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<500 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
        guard condition() else { throw TestFailure(what) }
    }

    struct TestFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    // FakeLLM holds the first call until the test lets it go: a fixed hold (8 s) ended first once,
    // in a full run on two cores, and the third call found a free slot.
    @Test("past max_concurrent a call waits; with the queue full the next gets 503 + retry-after at once")
    func queueFull() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-hold": "slot"],
                                 providerOptions: "max_concurrent: 1, max_queue: 1, queue_timeout_ms: 600000")
        defer { h.shutdown() }
        async let first = h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "slot-a")
        try await Self.waitFor("first call in flight") { h.server.callsInFlight == 1 }
        async let second = h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "slot-b")
        try await Self.waitFor("second call admitted") { h.server.callsInFlight == 2 }
        let metrics = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/metrics").text
        #expect(metrics.contains(#"tokenctl_upstream_backlog{provider="openai",stage="queued"} 1"#))
        #expect(metrics.contains(#"tokenctl_upstream_backlog{provider="openai",stage="awaiting_head"} 1"#))
        let third = try await h.post("/v1/chat/completions", key: h.bobKey, json: Self.chat, requestID: "slot-c")
        #expect(third.status == 503)
        #expect(third.header("retry-after") == "1")
        #expect(third.text.contains("\"provider_busy\"") && third.text.contains("already waiting"))
        h.fake.release("slot")
        #expect(try await first.status == 200)
        #expect(try await second.status == 200)   // served once the first call ended

        let rows = try ["slot-a", "slot-b", "slot-c"].map { try #require(try h.row($0)) }
        #expect(rows.map(\.outcome) == [.ok, .ok, .refusedProviderBusy])
        #expect(rows[2].status == 503 && rows[2].cost == .zero && rows[2].user == "bob")
        #expect(h.server.callsInFlight == 0 && h.server.openQuotaReservations == 0)
    }

    // Held by FakeLLM as in queueFull (a 3 s hold let the second call in after the first ended
    // once, in a full run on a host half as fast as usual).
    @Test("a wait longer than queue_timeout_ms ends in 503, recorded, its reservation released")
    func waitExpires() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-hold": "slot"],
                                 providerOptions: "max_concurrent: 1, max_queue: 1, queue_timeout_ms: 200")
        defer { h.shutdown() }
        async let first = h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "wait-a")
        try await Self.waitFor("first call in flight") { h.server.callsInFlight == 1 }
        let waited = try await h.post("/v1/chat/completions", key: h.bobKey, json: Self.chat, requestID: "wait-b")
        #expect(waited.status == 503)
        #expect(waited.text.contains("waited 200 ms"))
        // Each provider has its own slots: a call to the Anthropic provider reaches it meanwhile.
        async let other = h.post("/v1/messages", key: h.bobKey, dialect: "anthropic",
                                 json: #"{"model":"claude-3-5-haiku-latest","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#,
                                 requestID: "wait-c")
        try await Self.waitFor("the Anthropic call at the provider") { h.fake.requestCount == 2 }
        h.fake.release("slot")
        #expect(try await other.status == 200)
        #expect(try h.row("wait-b")?.outcome == .refusedProviderBusy)
        #expect(try await first.status == 200)
        #expect(h.server.callsInFlight == 0 && h.server.openQuotaReservations == 0)
    }

    @Test("a waiting call is served when a slot frees, in each dialect")
    func waiterServed() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-first-byte-delay-ms": "200"],
                                 providerOptions: "max_concurrent: 1, max_queue: 4, queue_timeout_ms: 10000")
        defer { h.shutdown() }
        let message = #"{"model":"claude-3-5-haiku-latest","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#
        async let a = h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "served-a")
        async let b = h.post("/v1/chat/completions", key: h.bobKey, json: Self.chat, requestID: "served-b")
        async let c = h.post("/v1/messages", key: h.carolKey, dialect: "anthropic", json: message, requestID: "served-c")
        let statuses = try await [a.status, b.status, c.status]
        #expect(statuses == [200, 200, 200])
        for id in ["served-a", "served-b", "served-c"] { #expect(try h.row(id)?.outcome == .ok) }
    }

    @Test("a client that leaves while waiting is recorded as client_cancelled and frees its place")
    func waiterLeaves() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-hold": "slot"],
                                 providerOptions: "max_concurrent: 1, max_queue: 1, queue_timeout_ms: 600000")
        defer { h.shutdown() }
        async let first = h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "leave-a")
        try await Self.waitFor("first call in flight") { h.server.callsInFlight == 1 }
        try await RawSocketClient.sendAndClose(port: h.port, requestID: "leave-b", key: h.bobKey, body: Self.chat,
                                   after: .milliseconds(100))
        try await Self.waitFor("the waiter's row") { (try? h.row("leave-b")) != nil }
        let left = try #require(try h.row("leave-b"))
        #expect(left.outcome == .clientCancelled)
        #expect(left.cost == .zero)
        #expect(left.errorMessage?.contains("waited for a provider slot") == true)
        // Its place is free again: a new call waits and is served after the first.
        async let next = h.post("/v1/chat/completions", key: h.bobKey, json: Self.chat, requestID: "leave-c")
        try await Self.waitFor("the next call waiting") { h.server.callsInFlight == 2 }
        #expect(h.fake.requestCount == 1)
        h.fake.release("slot")
        #expect(try await next.status == 200)
        #expect(try await first.status == 200)
    }
}

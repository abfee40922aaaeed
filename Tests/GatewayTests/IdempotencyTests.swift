import Foundation
import Ledger
import NIOCore
import NIOPosix
import Testing
@testable import Gateway

/// `Idempotency-Key`: a repeat of a completed call gets the same answer with no second upstream
/// call and no second charge; a repeat in flight waits; failures and refusals are not kept.
@Suite("Idempotency keys")
struct IdempotencyTests {
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
    static let stream = #"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#

    func call(_ h: ProxyHarness, key: String, token: String?, body: String = chat, id: String) async throws -> ReceivedResponse {
        try await h.post("/v1/chat/completions", key: key, json: body, requestID: id,
                         headers: token.map { [("idempotency-key", $0)] } ?? [])
    }

    @Test("a repeat gets the first answer again: one upstream call, one charge, the repeat recorded as replayed")
    func repeatIsReplayed() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        for body in [Self.chat, Self.stream] {
            let token = "order-\(body.count)"
            let first = try await call(h, key: h.aliceKey, token: token, body: body, id: "first-\(body.count)")
            let again = try await call(h, key: h.aliceKey, token: token, body: body, id: "again-\(body.count)")
            #expect(first.status == 200 && again.status == 200)
            #expect(again.body == first.body)
            #expect(again.header("x-tokenctl-idempotent-replay") == "first-\(body.count)")
            #expect(again.header("x-request-id") == "again-\(body.count)")
            #expect(h.fake.exchange(requestID: "again-\(body.count)") == nil)
            let original = try #require(try h.row("first-\(body.count)"))
            let replayed = try #require(try h.row("again-\(body.count)"))
            #expect(original.outcome == .ok && original.cost > .zero)
            #expect(replayed.outcome == .replayed && replayed.cost == .zero && replayed.usage == .zero)
            #expect(replayed.user == "alice" && replayed.team == original.team && replayed.plan == original.plan)
            #expect(replayed.plan != nil)
            #expect(replayed.modelRequested == "gpt-4o-mini" && replayed.stream == (body == Self.stream))
        }
    }

    @Test("the key belongs to the caller's API key; another caller with the same token makes its own call")
    func scopedToTheAPIKey() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        _ = try await call(h, key: h.aliceKey, token: "shared", id: "alice-1")
        let bob = try await call(h, key: h.bobKey, token: "shared", id: "bob-1")
        #expect(bob.status == 200 && bob.header("x-tokenctl-idempotent-replay") == nil)
        #expect(try h.row("bob-1")?.outcome == .ok)
    }

    @Test("the same key with a different body: 409 in the caller's dialect")
    func differentBody() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        _ = try await call(h, key: h.aliceKey, token: "k1", id: "body-1")
        let other = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"something else"}]}"#
        let r = try await call(h, key: h.aliceKey, token: "k1", body: other, id: "body-2")
        #expect(r.status == 409 && r.header("x-should-retry") == "false")  // the same request meets it again
        #expect(r.text.contains("idempotency_conflict") && r.text.contains("different request body"))
        #expect(try h.row("body-2")?.outcome == .refusedBadRequest)
    }

    @Test("the same key and body with another beta header: 409, as the beta may change the answer")
    func differentBetaHeader() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let claude = #"{"model":"claude-3-5-haiku-20241022","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#
        func call(_ id: String, beta: String) async throws -> ReceivedResponse {
            try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: claude, requestID: id,
                             headers: [("idempotency-key", "k-beta"), ("anthropic-beta", beta)])
        }
        #expect(try await call("beta-1", beta: "token-efficient-tools-2025-02-19").status == 200)
        let same = try await call("beta-2", beta: "token-efficient-tools-2025-02-19")
        #expect(same.status == 200 && same.header("x-tokenctl-idempotent-replay") == "beta-1")
        let other = try await call("beta-3", beta: "interleaved-thinking-2025-05-14")
        #expect(other.status == 409 && other.text.contains("anthropic-beta"), "\(other.text)")
        #expect(try h.row("beta-3")?.outcome == .refusedBadRequest)
        #expect(h.fake.exchange(requestID: "beta-3") == nil)
    }

    @Test("a repeat while the first is in flight waits for it and gets its answer")
    func repeatInFlightWaits() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-first-byte-delay-ms": "600"])
        defer { h.shutdown() }
        async let first = call(h, key: h.aliceKey, token: "slow", id: "slow-1")
        for _ in 0..<300 where h.server.callsInFlight == 0 { try await Task.sleep(for: .milliseconds(10)) }
        let second = try await call(h, key: h.aliceKey, token: "slow", id: "slow-2")
        let firstAnswer = try await first
        #expect(firstAnswer.status == 200 && second.status == 200)
        #expect(second.body == firstAnswer.body)
        #expect(h.fake.exchange(requestID: "slow-2") == nil)
        #expect(try h.row("slow-2")?.outcome == .replayed)
    }

    @Test("a refused or failed first call is not kept: the repeat runs anew")
    func failuresAreNotKept() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let unknown = #"{"model":"llama-unknown","messages":[]}"#
        let r1 = try await call(h, key: h.aliceKey, token: "bad", body: unknown, id: "bad-1")
        let r2 = try await call(h, key: h.aliceKey, token: "bad", body: unknown, id: "bad-2")
        #expect(r1.status == 404 && r2.status == 404)
        #expect(try h.row("bad-2")?.outcome == .refusedUnknownModel)
        let tooLong = try await call(h, key: h.aliceKey, token: String(repeating: "x", count: 256), id: "long")
        #expect(tooLong.status == 400 && tooLong.text.contains("Idempotency-Key"))
    }

    @Test("the store: expiry, bounds, answers too large to keep, waiters released")
    func store() throws {
        let store = IdempotencyStore(ttlMicros: 1_000, maxEntries: 2, maxBytes: 100, maxAnswerBytes: 50)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let waiter = IdempotencyStore.Waiter(loop: loop) { _ in }
        func key(_ t: String) -> IdempotencyStore.Key { .init(apiKeyID: "k", token: t) }
        func answer(_ bytes: Int) -> IdempotencyStore.Answer {
            .init(status: 200, headers: [], body: ByteBuffer(repeating: 0x61, count: bytes), callID: "c")
        }
        #expect(isProceed(store.claim(key("a"), fingerprint: 1, now: 0, waiter: waiter)))
        #expect(isWait(store.claim(key("a"), fingerprint: 1, now: 1, waiter: waiter)))
        store.complete(key("a"), answer(10), bytes: 10, now: 2)
        #expect(isReplay(store.claim(key("a"), fingerprint: 1, now: 3, waiter: waiter)))
        #expect(isConflict(store.claim(key("a"), fingerprint: 2, now: 3, waiter: waiter)))
        // Past the TTL it is gone.
        #expect(isProceed(store.claim(key("a"), fingerprint: 1, now: 2_000, waiter: waiter)))
        store.release(key("a"))
        // Too large to keep: a repeat is a conflict, not a second call.
        _ = store.claim(key("big"), fingerprint: 1, now: 3_000, waiter: waiter)
        store.complete(key("big"), answer(60), bytes: 60, now: 3_000)
        #expect(isConflict(store.claim(key("big"), fingerprint: 1, now: 3_001, waiter: waiter)))
        // Bounded: at most 2 entries; the oldest goes first.
        for t in ["x", "y", "z"] {
            _ = store.claim(key(t), fingerprint: 1, now: 3_002, waiter: waiter)
            store.complete(key(t), answer(10), bytes: 10, now: 3_002)
        }
        #expect(store.count <= 2)
        #expect(isReplay(store.claim(key("z"), fingerprint: 1, now: 3_003, waiter: waiter)))
    }

    @Test("one caller's flood evicts its own oldest answers, not another caller's (each holds at most an eighth)")
    func floodEvictsOnlyItsOwn() throws {
        let store = IdempotencyStore(maxEntries: 80, maxBytes: 800, maxAnswerBytes: 50)
        #expect(store.maxEntriesPerHolder == 10 && store.maxBytesPerHolder == 100)
        let waiter = IdempotencyStore.Waiter(loop: MultiThreadedEventLoopGroup.singleton.next()) { _ in }
        func keep(_ caller: String, _ token: String, bytes: Int, at now: Int64) {
            let key = IdempotencyStore.Key(apiKeyID: caller, token: token)
            #expect(isProceed(store.claim(key, fingerprint: 1, now: now, waiter: waiter)))
            store.complete(key, .init(status: 200, headers: [], body: ByteBuffer(repeating: 0x61, count: bytes), callID: token),
                           bytes: bytes, now: now)
        }
        func replays(_ caller: String, _ token: String) -> Bool {
            isReplay(store.claim(.init(apiKeyID: caller, token: token), fingerprint: 1, now: 1_000, waiter: waiter))
        }
        keep("alice", "important", bytes: 40, at: 1)
        for i in 0..<30 { keep("carol", "flood-\(i)", bytes: 5, at: 2 + Int64(i)) }  // entries over her share
        for i in 0..<30 { keep("carol", "large-\(i)", bytes: 45, at: 40 + Int64(i)) }  // bytes over her share
        #expect(replays("alice", "important"))
        #expect(replays("carol", "large-29") && replays("carol", "large-28"))
        #expect(!replays("carol", "flood-0") && !replays("carol", "large-0"))
        #expect(store.count <= 1 + 10 + 2)  // alice's, carol's share, the two claims just made
        // More keys buy no more room: a holder's keys share one share (a verification trial's).
        for k in 0..<10 {
            for i in 0..<10 {
                let key = IdempotencyStore.Key(apiKeyID: "mallory-\(k)", token: "t-\(i)", owner: "mallory")
                _ = store.claim(key, fingerprint: 1, now: 100, waiter: waiter)
                store.complete(key, .init(status: 200, headers: [], body: ByteBuffer(repeating: 0x61, count: 45), callID: "m"),
                               bytes: 45, now: 100 + Int64(k * 10 + i))
            }
        }
        #expect(replays("alice", "important"))
    }

    @Test("a holder far over their share: their own oldest go, the order stays short, the books stay in step")
    func heavyHolderStaysLinear() throws {
        let store = IdempotencyStore(maxEntries: 80, maxBytes: 1 << 20, maxAnswerBytes: 1_000)
        let waiter = IdempotencyStore.Waiter(loop: MultiThreadedEventLoopGroup.singleton.next()) { _ in }
        let answer = IdempotencyStore.Answer(status: 200, headers: [], body: ByteBuffer(repeating: 0x61, count: 10), callID: "c")
        let quiet = IdempotencyStore.Key(apiKeyID: "quiet", token: "kept")
        _ = store.claim(quiet, fingerprint: 1, now: 0, waiter: waiter)
        store.complete(quiet, answer, bytes: 10, now: 0)
        // 50,000 answers of one holder, a share of 10. Eviction walked the whole order for each
        // (a reviewer's model: 38 M steps for 10,000), which grew without end: it stays short now.
        for i in 0..<50_000 {
            let key = IdempotencyStore.Key(apiKeyID: "heavy", token: "t-\(i)")
            _ = store.claim(key, fingerprint: 1, now: Int64(i + 1), waiter: waiter)
            store.complete(key, answer, bytes: 10, now: Int64(i + 1))
        }
        #expect(store.count == 11)
        #expect(store.bookkeeping.orderLength < 3_000 && store.bookkeeping.holders == 2)
        if case .replay = store.claim(quiet, fingerprint: 1, now: 60_000, waiter: waiter) {} else { Issue.record("quiet's answer was evicted") }
    }

    func isProceed(_ c: IdempotencyStore.Claim) -> Bool { if case .proceed = c { return true }; return false }
    func isWait(_ c: IdempotencyStore.Claim) -> Bool { if case .wait = c { return true }; return false }
    func isReplay(_ c: IdempotencyStore.Claim) -> Bool { if case .replay = c { return true }; return false }
    func isConflict(_ c: IdempotencyStore.Claim) -> Bool { if case .conflict = c { return true }; return false }
}

import Foundation
@testable import Gateway
import Ledger
import NIOCore
import NIOPosix
import Policy
import Testing

/// Refusals of requests without a known key are recorded only within `unknown_callers`: anyone
/// who reaches the port can send them, and a row each would let them fill the ledger's disk.
@Suite("Refusals of unknown callers")
struct UnknownCallerRefusalTests {
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#

    @Test("past unknown_callers, keyless refusals are answered 401 but not recorded; counted and logged")
    func floodIsBounded() async throws {
        let log = LogCapture()
        let h = try ProxyHarness(gatewayYAML: "unknown_callers: { rows_per_minute: 5, rows_per_minute_per_address: 3 }\n",
                                 logger: log.logger)
        defer { h.shutdown() }
        let port = h.port
        // On a thread of its own, so the flood is quick however busy the test pool is.
        let (statuses, seconds) = await withCheckedContinuation { (done: CheckedContinuation<([String: Int], Double), Never>) in
            Thread.detachNewThread {
                let started = Date()
                var statuses: [String: Int] = [:]
                for (source, prefix, count) in [("127.0.0.1", "flood-a", 8), ("127.0.0.2", "flood-b", 6)] {
                    for n in 0..<count {
                        let id = "\(prefix)-\(n)"
                        guard let client = try? RawSocketClient(port: port, from: source) else {
                            statuses[id] = -1
                            continue
                        }
                        client.send(RawSocketClient.request(key: "tk-unknown", body: Self.chat, requestID: id))
                        let bytes = client.blockingRead(timeout: 10).bytes
                        client.close()
                        statuses[id] = RawSocketClient.statuses(bytes).first ?? 0
                    }
                }
                done.resume(returning: (statuses, Date().timeIntervalSince(started)))
            }
        }
        #expect(!statuses.values.contains(-1), "could not connect from 127.0.0.2 (Linux gives loopback all of 127/8)")
        #expect(statuses.count == 14)
        #expect(statuses.values.allSatisfy { $0 == 401 }, "\(statuses)")

        let recorded = Set(try h.allRows().filter { $0.outcome == .refusedAuth }.map(\.requestId))
        // A meter of n a minute admits at most n · (1 + t / 60 s) over t: exactly the burst when quick.
        func most(_ perMinute: Int) -> Int { Int(Double(perMinute) * (1 + seconds / 60)) }
        let fromA = recorded.filter { $0.hasPrefix("flood-a") }, fromB = recorded.filter { $0.hasPrefix("flood-b") }
        #expect(fromA.count >= 3 && fromA.count <= most(3), "\(recorded), \(seconds) s")
        #expect(recorded.count >= 5 && recorded.count <= most(5), "\(recorded), \(seconds) s")
        // The first of each address were recorded; the second address got what the first left of all.
        #expect(fromA.isSuperset(of: ["flood-a-0", "flood-a-1", "flood-a-2"]))
        #expect(fromB.isSuperset(of: ["flood-b-0", "flood-b-1"]))

        let scrape = try await Scrape.of(h)
        let unrecorded = scrape["tokenctl_unknown_caller_refusals_unrecorded_total"] ?? -1
        #expect(unrecorded == Double(14 - recorded.count))
        let auth = scrape.samples.filter { $0.key.hasPrefix(#"tokenctl_refusals_total{reason="auth""#) }.values.reduce(0, +)
        #expect(auth == 14, "every refusal counted, recorded or not")
        #expect(log.text.contains("refusals of unknown callers are past unknown_callers"), "\(log.text)")

        // A known caller's refusal is recorded whatever unknown callers did.
        let bad = try await h.post("/v1/chat/completions", key: h.aliceKey, json: #"{"model":"#, requestID: "known-1")
        #expect(bad.status == 400)
        #expect(try h.row("known-1")?.user == "alice")
        // The stop logs what its window held so far (its minute is not up).
        try h.server.shutdown()
        #expect(log.text.contains("\"count\": \(14 - recorded.count)"), "\(log.text)")
    }

    @Test("rows_per_minute: 0 records no unknown caller's refusal (401, 404); a known caller's call is served")
    func zeroRecordsNone() async throws {
        let h = try ProxyHarness(gatewayYAML: "unknown_callers: { rows_per_minute: 0 }\n")
        defer { h.shutdown() }
        let missing = try await h.post("/v1/chat/completions", key: nil, json: Self.chat, requestID: "none-1")
        #expect(missing.status == 401)
        let unknown = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/v1/models")
        #expect(unknown.status == 401)
        let nowhere = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/nowhere")
        #expect(nowhere.status == 404)
        let ok = try await h.post("/v1/chat/completions", key: h.bobKey, json: Self.chat, requestID: "none-2")
        #expect(ok.status == 200)
        let rows = try h.allRows()
        #expect(rows.map(\.requestId) == ["none-2"])
        #expect((try await Scrape.of(h))["tokenctl_unknown_caller_refusals_unrecorded_total"] == 3)
    }

    @Test("an admin request without a known key is logged within unknown_callers, on meters of its own")
    func adminRefusalsAreBounded() async throws {
        let log = LogCapture()
        let h = try ProxyHarness(gatewayYAML: "unknown_callers: { rows_per_minute: 2, rows_per_minute_per_address: 2 }\n",
                                 logger: log.logger)
        defer { h.shutdown() }
        let started = Date()
        // Model routes' keyless refusals use up their meters first: admin lines have their own.
        for n in 0..<4 {
            let r = try await h.post("/v1/chat/completions", key: nil, json: Self.chat, requestID: "model-\(n)")
            #expect(r.status == 401)
        }
        for _ in 0..<5 {
            let r = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/admin/api/health")
            #expect(r.status == 401)
        }
        let seconds = Date().timeIntervalSince(started)
        let noted = log.text.components(separatedBy: "admin request refused").count - 1
        #expect(noted >= 2 && noted <= Int(2 * (1 + seconds / 60)), "\(log.text)")
        #expect(log.text.contains("answered without a log line (admin requests)"), "\(log.text)")
        // The admin key is served as before.
        let ok = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/admin/api/health",
                                               headers: [("authorization", "Bearer \(h.adminKey)")])
        #expect(ok.status == 200)
    }

    @Test("the unrecorded ones are summed up in one line a window, with the addresses that sent most")
    func summaryLine() async throws {
        let log = LogCapture()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let settings = UnknownCallerSettings(rowsPerMinute: 1, rowsPerMinutePerAddress: 1)
        let v4 = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        let v6 = try SocketAddress(ipAddress: "2001:db8:1:2:3:4:5:6", port: 1)
        let now = UnixTime.nowMicros()
        // A window longer than the test: its summary is asked for, not waited for.
        let refusals = UnknownCallerRefusals(logger: log.logger, trace: "a ledger row", window: .minutes(10))
        let verdicts = [v4, v4, v6, v4, v6].map { refusals.mayRecord(from: $0, settings, now: now, on: loop) }
        #expect(verdicts == [true, false, false, false, false])
        refusals.summarise(now: now + 3_000_000)
        let lines = log.text.split(separator: "\n")
        #expect(lines.count == 2, "\(log.text)")
        #expect(lines.first?.contains("\"address\": 127.0.0.1") == true, "\(log.text)")
        #expect(lines.last?.contains("answered without a ledger row") == true, "\(log.text)")
        #expect(lines.last?.contains("\"count\": 4") == true, "\(log.text)")
        #expect(lines.last?.contains("\"seconds\": 3") == true, "\(log.text)")
        #expect(lines.last?.contains("127.0.0.1 (2), 2001:db8:1:2::/64 (2)") == true, "\(log.text)")

        // The window's timer logs it by itself.
        let timed = LogCapture()
        let quick = UnknownCallerRefusals(logger: timed.logger, trace: "a ledger row", window: .milliseconds(50))
        #expect(!quick.mayRecord(from: v4, UnknownCallerSettings(rowsPerMinute: 0), now: now, on: loop))
        for _ in 0..<500 where !timed.text.contains("\"count\"") { try await Task.sleep(for: .milliseconds(20)) }
        #expect(timed.text.contains("\"count\": 1"), "\(timed.text)")
        try await group.shutdownGracefully()
    }

    @Test("a window's tally: episodes announced once, addresses ranked, bounded in number")
    func tally() {
        var tally = UnrecordedRefusalTally()
        let window: Int64 = 60_000_000
        #expect(tally.close(now: 0) == nil)
        #expect(tally.add("b", now: 0, window: window) == .openedEpisode)
        #expect(tally.add("a", now: 1, window: window) == .counted)
        #expect(tally.add("b", now: 2, window: window) == .counted)
        for n in 0..<(UnrecordedRefusalTally.addressesKept + 5) { _ = tally.add("x\(n)", now: 3, window: window) }
        let first = tally.close(now: window)
        #expect(first?.total == 3 + UnrecordedRefusalTally.addressesKept + 5)
        #expect(first?.openedAt == 0)
        #expect(first?.top.map(\.address) == ["b", "a", "x0"])
        #expect(first?.top.map(\.count) == [2, 1, 1])
        // 256 tallied by name (a, b, x0…x253): 253 beyond the top three; x254… only counted.
        #expect(first?.otherAddresses == UnrecordedRefusalTally.addressesKept - 3)
        #expect(first?.untallied == 7)
        // The flood goes on: the next window is no new episode; after a quiet window it is.
        #expect(tally.add("b", now: window + 10, window: window) == .opened)
        #expect(tally.close(now: 2 * window)?.total == 1)
        #expect(tally.add("b", now: 3 * window + 1, window: window) == .openedEpisode)
    }

    @Test("client addresses: IPv4 whole (also mapped into IPv6), IPv6 by its /64")
    func addresses() throws {
        #expect(UnknownCallerRefusals.address(of: try SocketAddress(ipAddress: "203.0.113.7", port: 9)) == "203.0.113.7")
        #expect(UnknownCallerRefusals.address(of: try SocketAddress(ipAddress: "::ffff:203.0.113.7", port: 9)) == "203.0.113.7")
        #expect(UnknownCallerRefusals.address(of: try SocketAddress(ipAddress: "2001:db8:aa:bb:1:2:3:4", port: 9)) == "2001:db8:aa:bb::/64")
        #expect(UnknownCallerRefusals.address(of: try SocketAddress(ipAddress: "2001:db8:aa:bb:ff::1", port: 9)) == "2001:db8:aa:bb::/64")
        #expect(UnknownCallerRefusals.address(of: try SocketAddress(ipAddress: "::1", port: 9)) == "::/64")
        #expect(UnknownCallerRefusals.address(of: try SocketAddress(unixDomainSocketPath: "/tmp/x.sock")) == "local")
        #expect(UnknownCallerRefusals.address(of: nil) == "unknown")
    }
}

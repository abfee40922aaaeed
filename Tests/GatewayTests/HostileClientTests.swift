import Foundation
import Ledger
import Testing

/// Request-side bad input: every case gets a clear answer (or a closed connection), the server
/// keeps serving, and the ledger stays consistent.
@Suite("Hostile and unusual clients")
struct HostileClientTests {
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#

    /// The server still answers a normal call (nothing got stuck or crashed).
    static func stillServing(_ h: ProxyHarness, _ id: String) async throws {
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: id)
        #expect(r.status == 200)
    }

    @Test("HTTP/1.0: answered, then the connection closes")
    func http10() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let client = try RawSocketClient(port: h.port)
        defer { client.close() }
        client.send(RawSocketClient.request(version: "HTTP/1.0", key: h.aliceKey, body: Self.chat, requestID: "h10"))
        let (bytes, closed) = await client.readUntilClosed()
        #expect(RawSocketClient.statuses(bytes) == [200])
        #expect(closed)
        #expect(try h.row("h10")?.outcome == .ok)
    }

    @Test("pipelined requests in one write are answered in order")
    func pipelined() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let client = try RawSocketClient(port: h.port)
        defer { client.close() }
        let bad = #"{"model":42}"#
        client.send(RawSocketClient.request(key: h.aliceKey, body: Self.chat, requestID: "pipe-1")
                    + RawSocketClient.request(key: h.aliceKey, body: bad, requestID: "pipe-2")
                    + RawSocketClient.request(key: h.aliceKey, body: Self.chat, requestID: "pipe-3",
                                              extra: ["connection: close"]))
        let (bytes, _) = await client.readUntilClosed()
        #expect(RawSocketClient.statuses(bytes) == [200, 400, 200])
        let text = String(decoding: bytes, as: UTF8.self)
        let order = ["pipe-1", "pipe-2", "pipe-3"].compactMap { text.range(of: "x-request-id: \($0)")?.lowerBound }
        #expect(order.count == 3 && order == order.sorted())
        #expect(try ["pipe-1", "pipe-2", "pipe-3"].map { try h.row($0)?.outcome } == [.ok, .refusedBadRequest, .ok])
    }

    @Test("invalid UTF-8 and truncated JSON bodies get 400 naming the problem")
    func badBodies() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        var invalid = Array(#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":""#.utf8)
        invalid += [0xC3, 0x28, 0xFF]
        invalid += Array(#""}]}"#.utf8)
        let r1 = try await TestHTTPClient.send(port: h.port, path: "/v1/chat/completions",
                                               headers: [("authorization", "Bearer \(h.aliceKey)"),
                                                         ("content-type", "application/json"), ("x-request-id", "utf8")],
                                               body: invalid)
        #expect(r1.status == 400)
        #expect(r1.text.contains("invalid_request"))
        let truncated = String(Self.chat.dropLast(7))
        let r2 = try await h.post("/v1/chat/completions", key: h.aliceKey, json: truncated, requestID: "trunc")
        #expect(r2.status == 400)
        for id in ["utf8", "trunc"] { #expect(try h.row(id)?.outcome == .refusedBadRequest) }
        try await Self.stillServing(h, "after-bad-bodies")
    }

    @Test("a 100 MiB body is refused with 413 without being read, recorded, and the connection closed without a reset")
    func hugeBody() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let client = try RawSocketClient(port: h.port)
        defer { client.close() }
        let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer \(h.aliceKey)\r\n"
            + "content-type: application/json\r\nx-request-id: huge\r\ncontent-length: \(100 << 20)\r\n\r\n"
        client.send(head)
        // Only the first MiB is offered; the answer must not wait for the other 99. The bytes
        // sent after the answer are read and dropped: a reset would lose the answer to a client
        // that was still writing (an asyncio client's read fails; the SDKs retry that).
        #expect(client.send([UInt8](repeating: UInt8(ascii: " "), count: 1 << 20)))
        let (bytes, end) = await client.readUntilEnd(timeout: 8)
        #expect(RawSocketClient.statuses(bytes).first == 413)
        #expect(end == .closed)
        #expect(try h.row("huge")?.outcome == .refusedTooLarge)
        try await Self.stillServing(h, "after-huge")
    }

    // Before, an unknown caller's body was read (up to max_body_bytes) and then refused: anyone
    // could make the gateway hold 10 MiB per connection for body_timeout_ms.
    @Test("a body sent with an unknown key or none is not read: 401 on the head, in the caller's dialect, recorded, the connection closed")
    func unknownCallerBodyNotRead() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        for (path, auth, id, text) in [("/v1/chat/completions", "authorization: Bearer tk-\(String(repeating: "x", count: 43))", "nokey-1", "invalid_api_key"),
                                       ("/v1/messages", "", "nokey-2", "authentication_error"),
                                       ("/v1/no-such-route", "", "nokey-3", "invalid_api_key")] {
            let client = try RawSocketClient(port: h.port)
            defer { client.close() }
            // The head only: the body (10 MiB declared) never comes, and the answer must not wait for it.
            client.send("POST \(path) HTTP/1.1\r\nhost: 127.0.0.1\r\n\(auth.isEmpty ? "" : auth + "\r\n")"
                        + "content-type: application/json\r\nx-request-id: \(id)\r\ncontent-length: \(10 << 20)\r\n\r\n")
            let (bytes, closed) = await client.readUntilClosed(timeout: 8)
            #expect(closed)
            #expect(RawSocketClient.statuses(bytes) == [401], "\(path)")
            #expect(String(decoding: bytes, as: UTF8.self).contains(text), "\(path)")
            let row = try #require(try h.row(id))
            #expect(row.outcome == .refusedAuth && row.status == 401 && row.user == nil)
        }
        // The admin API too: a body for it needs an admin key (answered, not recorded, as its refusals are).
        for (auth, status) in [("", 401), ("authorization: Bearer \(h.aliceKey)\r\n", 403)] {
            let client = try RawSocketClient(port: h.port)
            defer { client.close() }
            client.send("POST /admin/api/keys HTTP/1.1\r\nhost: 127.0.0.1\r\n\(auth)content-type: application/json\r\n"
                        + "x-request-id: admin-nokey\r\ncontent-length: \(10 << 20)\r\n\r\n")
            let (bytes, closed) = await client.readUntilClosed(timeout: 8)
            #expect(closed)
            #expect(RawSocketClient.statuses(bytes) == [status])
            #expect(String(decoding: bytes, as: UTF8.self).lowercased().contains("cache-control: no-store"))
        }
        #expect(try h.row("admin-nokey") == nil)
        // A known key's body is read and its call made, on a connection that stays open.
        let client = try RawSocketClient(port: h.port)
        defer { client.close() }
        client.send(RawSocketClient.request(key: h.aliceKey, body: Self.chat, requestID: "known-1")
                    + RawSocketClient.request(key: h.aliceKey, body: Self.chat, requestID: "known-2", extra: ["connection: close"]))
        let (bytes, _) = await client.readUntilEnd(timeout: 8)
        #expect(RawSocketClient.statuses(bytes) == [200, 200])
        try await Self.stillServing(h, "after-unknown-callers")
    }

    @Test("too many headers: 431 in the caller's dialect, recorded, and the connection closes")
    func tooManyHeaders() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let client = try RawSocketClient(port: h.port)
        defer { client.close() }
        let extra = (0..<300).map { "x-many-\($0): a" }
        client.send(RawSocketClient.request(key: h.aliceKey, body: Self.chat, requestID: "many", extra: extra))
        let (bytes, closed) = await client.readUntilClosed(timeout: 5)
        #expect(closed)
        #expect(RawSocketClient.statuses(bytes) == [431])
        #expect(String(decoding: bytes, as: UTF8.self).contains("request_headers_too_large"))
        #expect(try h.row("many")?.outcome == .refusedTooLarge)
        try await Self.stillServing(h, "after-many")
    }

    @Test("a header flood past the HTTP decoder's limit: 400 and the connection closes")
    func headerFlood() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let client = try RawSocketClient(port: h.port)
        defer { client.close() }
        let extra = (0..<10_000).map { "x-flood-\($0): \(String(repeating: "a", count: 20))" }
        client.send(RawSocketClient.request(key: h.aliceKey, body: Self.chat, requestID: "flood", extra: extra))
        let (bytes, closed) = await client.readUntilClosed(timeout: 5)
        #expect(closed)
        #expect(RawSocketClient.statuses(bytes) == [400])
        try await Self.stillServing(h, "after-flood")
    }

    @Test("a client that sends half a request head and stalls is disconnected (slowloris)")
    func slowHeaders() async throws {
        let h = try ProxyHarness(gatewayYAML: "header_timeout_ms: 1000\n")
        defer { h.shutdown() }
        let client = try RawSocketClient(port: h.port)
        defer { client.close() }
        client.send("POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ")
        let (_, closed) = await client.readUntilClosed(timeout: 8)
        #expect(closed)
        // Still serving: a whole request written at once (no scheduling gap can outlast the
        // short header timeout, however loaded the machine).
        let next = try RawSocketClient(port: h.port)
        defer { next.close() }
        next.send(RawSocketClient.request(key: h.aliceKey, body: Self.chat, requestID: "after-slow-head",
                                          extra: ["connection: close"]))
        let (bytes, _) = await next.readUntilClosed(timeout: 8)
        #expect(RawSocketClient.statuses(bytes) == [200])
    }

    @Test("a client that stops sending its body midway is answered 408 and recorded")
    func slowBody() async throws {
        let h = try ProxyHarness(gatewayYAML: "body_timeout_ms: 300\n")
        defer { h.shutdown() }
        let client = try RawSocketClient(port: h.port)
        defer { client.close() }
        let full = RawSocketClient.request(key: h.aliceKey, body: Self.chat, requestID: "slow-body")
        client.send(String(full.dropLast(10)))
        let (bytes, closed) = await client.readUntilClosed(timeout: 5)
        #expect(closed)
        #expect(RawSocketClient.statuses(bytes) == [408])
        #expect(try h.row("slow-body")?.outcome == .refusedBadRequest)
        try await Self.stillServing(h, "after-slow-body")
    }
}

/// Connections past `max_connections`, and who may read `/metrics`.
@Suite("Connection cap and metrics access")
struct ConnectionCapTests {
    @Test("past max_connections a new connection is closed unread; held ones serve; a freed slot is taken again")
    func connectionCap() async throws {
        let h = try ProxyHarness(gatewayYAML: "max_connections: 2\n")
        defer { h.shutdown() }
        // Accepted in the order they connected: these two hold the cap.
        let first = try RawSocketClient(port: h.port)
        defer { first.close() }
        let second = try RawSocketClient(port: h.port)
        defer { second.close() }
        let third = try RawSocketClient(port: h.port)
        defer { third.close() }
        third.send(RawSocketClient.request(key: h.aliceKey, body: HostileClientTests.chat, requestID: "cap-refused"))
        let (refusedBytes, refusedEnd) = await third.readUntilEnd(timeout: 8)
        #expect(refusedBytes.isEmpty)
        #expect(refusedEnd != .timedOut)

        first.send(RawSocketClient.request(key: h.aliceKey, body: HostileClientTests.chat, requestID: "cap-held",
                                           extra: ["connection: close"]))
        let (bytes, closed) = await first.readUntilClosed(timeout: 8)
        #expect(RawSocketClient.statuses(bytes) == [200])
        #expect(closed)
        #expect(try h.row("cap-held")?.outcome == .ok)
        #expect(try h.row("cap-refused") == nil)

        // The slot is free once the server has seen the close (a moment after the client has).
        var scrape: String?
        for _ in 0..<100 where scrape == nil {
            if let r = try? await TestHTTPClient.send(port: h.port, method: .GET, path: "/metrics"), r.status == 200 {
                scrape = r.text
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let text = try #require(scrape)
        #expect(text.contains("\ntokenctl_client_connections 2\n"))  // second, and this scrape's
        #expect(text.contains("\ntokenctl_client_connections_refused_total "))
        #expect(!text.contains("\ntokenctl_client_connections_refused_total 0\n"))
    }

    @Test("metrics.access admin_key: /metrics needs an admin key; a model key gets 403, none 401")
    func metricsAccess() async throws {
        let h = try ProxyHarness(gatewayYAML: "metrics: { access: admin_key }\n")
        defer { h.shutdown() }
        let none = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/metrics")
        #expect(none.status == 401)
        #expect(!none.text.contains("tokenctl_"))
        let user = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/metrics",
                                                 headers: [("authorization", "Bearer \(h.aliceKey)")])
        #expect(user.status == 403)
        #expect(user.text.contains("/metrics"))
        let admin = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/metrics",
                                                  headers: [("authorization", "Bearer \(h.adminKey)")])
        #expect(admin.status == 200)
        #expect(admin.text.contains("tokenctl_calls_in_flight"))
        let open = try ProxyHarness()
        defer { open.shutdown() }
        #expect(try await TestHTTPClient.send(port: open.port, method: .GET, path: "/metrics").status == 200)
    }
}

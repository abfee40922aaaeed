import Foundation
import Ledger
import Testing

/// `gateway.yaml`'s `cors`: pages of allowed origins may call from a browser (the SDKs' browser
/// modes send a preflight, then the call with the page's `origin`); others get no CORS headers.
@Suite("Cross-origin calls from browsers")
struct CrossOriginTests {
    static let page = "https://tools.example.com"
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
    static let stream = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#

    static func preflight(_ h: ProxyHarness, origin: String, requestID: String) async throws -> ReceivedResponse {
        try await TestHTTPClient.send(port: h.port, method: .OPTIONS, path: "/v1/chat/completions", headers: [
            ("origin", origin), ("access-control-request-method", "POST"),
            ("access-control-request-headers", "authorization,content-type,x-stainless-os"), ("x-request-id", requestID)])
    }

    @Test("an allowed origin's preflight gets 204 and is not recorded; its calls, refusals and streams carry the origin")
    func allowedOrigin() async throws {
        let h = try ProxyHarness(gatewayYAML: "cors: { allowed_origins: [\"\(Self.page)\", \"http://localhost:5173\"] }\n")
        defer { h.shutdown() }
        let pre = try await Self.preflight(h, origin: Self.page, requestID: "cors-preflight")
        #expect(pre.status == 204)
        #expect(pre.header("access-control-allow-origin") == Self.page)
        #expect(pre.header("access-control-allow-methods")?.contains("POST") == true)
        #expect(pre.header("access-control-allow-headers") == "authorization,content-type,x-stainless-os")
        #expect(pre.header("vary") == "origin")
        #expect(try h.row("cors-preflight") == nil)

        let origin = [("origin", Self.page)]
        let ok = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "cors-ok", headers: origin)
        #expect(ok.status == 200)
        #expect(ok.header("access-control-allow-origin") == Self.page)
        #expect(ok.header("access-control-expose-headers") == "*")
        let refused = try await h.post("/v1/chat/completions", key: "tk-not-a-key", json: Self.chat,
                                       requestID: "cors-401", headers: origin)
        #expect(refused.status == 401)
        #expect(refused.header("access-control-allow-origin") == Self.page)
        let streamed = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.stream,
                                        requestID: "cors-stream", headers: [("origin", "http://localhost:5173")])
        #expect(streamed.status == 200 && streamed.text.contains("[DONE]"))
        #expect(streamed.header("access-control-allow-origin") == "http://localhost:5173")
        #expect(try h.row("cors-ok")?.outcome == .ok && h.row("cors-stream")?.outcome == .ok)

        // Another origin: no CORS headers (the browser blocks the page), the call is as without one.
        let other = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "cors-other",
                                     headers: [("origin", "https://evil.example.net")])
        #expect(other.status == 200 && other.header("access-control-allow-origin") == nil)
        let otherPre = try await Self.preflight(h, origin: "https://evil.example.net", requestID: "cors-other-preflight")
        #expect(otherPre.status == 405 && otherPre.header("access-control-allow-origin") == nil)
    }

    @Test("without cors no answer carries CORS headers; with * any origin gets *")
    func noneAndAny() async throws {
        let plain = try ProxyHarness()
        defer { plain.shutdown() }
        let r = try await plain.post("/v1/chat/completions", key: plain.aliceKey, json: Self.chat, requestID: "plain",
                                     headers: [("origin", Self.page)])
        #expect(r.status == 200 && r.header("access-control-allow-origin") == nil)
        #expect(try await Self.preflight(plain, origin: Self.page, requestID: "plain-preflight").status == 405)

        let any = try ProxyHarness(gatewayYAML: "cors: { allowed_origins: [\"*\"] }\n")
        defer { any.shutdown() }
        let a = try await any.post("/v1/chat/completions", key: any.aliceKey, json: Self.chat, requestID: "any",
                                   headers: [("origin", "null")])
        #expect(a.header("access-control-allow-origin") == "*" && a.header("vary") == nil)
        #expect(try await Self.preflight(any, origin: Self.page, requestID: "any-preflight").status == 204)

        // Even then, the admin API, /metrics and /dashboard are for the gateway's own origin.
        for path in ["/admin/api/keys", "/admin/api/health", "/metrics", "/dashboard"] {
            let pre = try await TestHTTPClient.send(port: any.port, method: .OPTIONS, path: path, headers: [
                ("origin", Self.page), ("access-control-request-method", "GET"), ("access-control-request-headers", "authorization")])
            #expect(pre.status != 204 && pre.header("access-control-allow-origin") == nil, "\(path)")
            let get = try await TestHTTPClient.send(port: any.port, method: .GET, path: path,
                                                    headers: [("origin", Self.page), ("authorization", "Bearer \(any.adminKey)")])
            #expect(get.status == 200 && get.header("access-control-allow-origin") == nil, "\(path)")
        }
    }
}

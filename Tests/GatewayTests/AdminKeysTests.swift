import Foundation
import Ledger
import NIOHTTP1
import PostgresLedger
import Testing

/// `/admin/api/keys`: caller keys listed, created and revoked by admin keys, through the real
/// server, its key store and its principal directory.
@Suite("Admin API: keys")
struct AdminKeysTests {
    static let manageKeys = "admin_api: { manage_keys: true }"
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#

    func send(_ h: ProxyHarness, _ method: HTTPMethod, _ path: String, key: String?, json: String? = nil) async throws
        -> ReceivedResponse {
        var headers = key.map { [("authorization", "Bearer \($0)")] } ?? []
        if json != nil { headers.append(("content-type", "application/json")) }
        return try await TestHTTPClient.send(port: h.port, method: method, path: path, headers: headers,
                                             body: json.map { Array($0.utf8) })
    }

    func listed(_ r: ReceivedResponse) throws -> [[String: Any]] {
        try #require(try jsonObject(r)["data"] as? [[String: Any]], "\(r.text)")
    }

    @Test("a key made through the API works at once, is listed without its secret, and once revoked is refused at once")
    func createListRevoke() async throws {
        let logs = LogCapture()
        let h = try ProxyHarness(gatewayYAML: Self.manageKeys, logger: logs.logger)
        defer { h.shutdown() }
        let made = try await send(h, .POST, "/admin/api/keys", key: h.adminKey, json: #"{"user":"dave","team":"design"}"#)
        #expect(made.status == 201, "\(made.text)")
        let key = try jsonObject(made)
        let id = try #require(key["id"] as? String), secret = try #require(key["secret"] as? String)
        #expect(id.hasPrefix("key_") && secret.hasPrefix("tk-"))
        #expect(key["user"] as? String == "dave" && key["team"] as? String == "design" && key["role"] as? String == "caller")
        #expect(key["created_at"] is String && key["revoked_at"] is NSNull)
        #expect(made.header("cache-control") == "no-store")

        // No wait for the key poll: the directory had the key before the answer.
        #expect(try await h.post("/v1/chat/completions", key: secret, json: Self.chat, requestID: "ak-1").status == 200)
        let row = try #require(try h.row("ak-1"))
        #expect(row.user == "dave" && row.team == "design" && row.keyId == id)

        let daves = try await send(h, .GET, "/admin/api/keys?user=dave", key: h.adminKey)
        #expect(daves.status == 200)
        #expect(try listed(daves).map { $0["id"] as? String } == [id])
        let all = try await send(h, .GET, "/admin/api/keys?state=active", key: h.adminKey)
        #expect(Set(try listed(all).compactMap { $0["user"] as? String }) == ["alice", "bob", "carol", "svc-chat", "ops", "dave"])
        #expect(try listed(all).first { $0["user"] as? String == "ops" }?["role"] as? String == "admin")
        #expect(!all.text.contains(secret) && !all.text.contains("secret"))

        let revoked = try await send(h, .DELETE, "/admin/api/keys/\(id)", key: h.adminKey)
        #expect(revoked.status == 200, "\(revoked.text)")
        let revokedAt = try #require(try jsonObject(revoked)["revoked_at"] as? String)
        #expect(try await h.post("/v1/chat/completions", key: secret, json: Self.chat, requestID: "ak-2").status == 401)
        #expect(try h.row("ak-2")?.keyId == id && h.row("ak-2")?.user == "dave")
        // Revoking again answers as the first time did.
        let again = try await send(h, .DELETE, "/admin/api/keys/\(id)", key: h.adminKey)
        #expect(again.status == 200)
        #expect(try jsonObject(again)["revoked_at"] as? String == revokedAt)
        let gone = try await send(h, .GET, "/admin/api/keys?state=revoked", key: h.adminKey)
        #expect(try listed(gone).map { $0["id"] as? String } == [id])
        #expect(try await send(h, .GET, "/admin/api/keys?team=research", key: h.adminKey).text.contains("\"alice\""))
        // Each change is logged with the admin key that made it.
        let adminID = try #require(try listed(all).first { $0["role"] as? String == "admin" }?["id"] as? String)
        let lines = logs.text.split(separator: "\n")
        #expect(lines.filter { $0.contains("api key created through the admin API") && $0.contains(id) && $0.contains(adminID) }.count == 1)
        #expect(lines.filter { $0.contains("api key revoked through the admin API") && $0.contains(id) && $0.contains(adminID) }.count == 1)
    }

    /// `tokenctl keys revoke` on the host, or another replica, may revoke a key first; the key
    /// poll may or may not have seen it when the admin API is asked: the answer is the same.
    @Test("a key revoked elsewhere, then through the API: 200 with the first revocation's time, logged as no new revocation, refused")
    func revokedElsewhereFirst() async throws {
        let logs = LogCapture()
        let h = try ProxyHarness(gatewayYAML: Self.manageKeys, logger: logs.logger)
        defer { h.shutdown() }
        let made = try jsonObject(try await send(h, .POST, "/admin/api/keys", key: h.adminKey, json: #"{"user":"erin"}"#))
        let id = try #require(made["id"] as? String), secret = try #require(made["secret"] as? String)
        #expect(try await h.post("/v1/chat/completions", key: secret, json: Self.chat, requestID: "re-1").status == 200)

        let elsewhere = UnixTime.nowMicros() - 5_000_000
        let keys = try LedgerBackend(h.dbPath).openKeys()
        #expect(try keys.revoke(id: id, at: elsewhere))
        keys.close()
        let revoked = try await send(h, .DELETE, "/admin/api/keys/\(id)", key: h.adminKey)
        #expect(revoked.status == 200, "\(revoked.text)")
        let first = Date(timeIntervalSince1970: Double(elsewhere / 1_000_000)).formatted(.iso8601)
        #expect(try jsonObject(revoked)["revoked_at"] as? String == first, "\(revoked.text)")
        #expect(try await h.post("/v1/chat/completions", key: secret, json: Self.chat, requestID: "re-2").status == 401)
        #expect(!logs.text.contains("api key revoked through the admin API"))
        let listed = try listed(try await send(h, .GET, "/admin/api/keys?state=revoked", key: h.adminKey))
        #expect(listed.map { $0["id"] as? String } == [id] && listed.first?["revoked_at"] as? String == first)
    }

    /// A revoked key still in use is worth an admin's look: its refusals name the key and its
    /// user (not "(none)"), but a revoked key is no caller: its rows stay within unknown_callers.
    @Test("a revoked key's refusals are recorded against the key and its user, within unknown_callers")
    func revokedKeyRefusalsNameTheKey() async throws {
        let h = try ProxyHarness(gatewayYAML: Self.manageKeys + "\nunknown_callers: { rows_per_minute: 600, rows_per_minute_per_address: 4 }\n")
        defer { h.shutdown() }
        let made = try jsonObject(try await send(h, .POST, "/admin/api/keys", key: h.adminKey, json: #"{"user":"frank","team":"ops2"}"#))
        let id = try #require(made["id"] as? String), secret = try #require(made["secret"] as? String)
        #expect(try await h.post("/v1/chat/completions", key: secret, json: Self.chat, requestID: "rk-0").status == 200)

        // Revoked by `tokenctl keys revoke`: the key poll brings the revocation in.
        let keys = try LedgerBackend(h.dbPath).openKeys()
        #expect(try keys.revoke(id: id, at: UnixTime.nowMicros()))
        keys.close()
        var refusedID: String?
        for attempt in 0..<50 where refusedID == nil {
            let requestID = "rk-poll-\(attempt)"
            if try await h.post("/v1/chat/completions", key: secret, json: Self.chat, requestID: requestID).status == 401 {
                refusedID = requestID
            } else {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let refused = try #require(refusedID, "the key poll did not bring the revocation in 5 s")
        let polled = try #require(try h.row(refused))
        #expect(polled.outcome == .refusedAuth && polled.keyId == id && polled.user == "frank" && polled.team == "ops2"
                && polled.plan == nil, "\(polled)")
        let models = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/v1/models",
                                                   headers: [("authorization", "Bearer \(secret)"), ("x-request-id", "rk-models")])
        #expect(models.status == 401)
        #expect(try h.row("rk-models")?.keyId == id)
        let nowhere = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/v1/nowhere",
                                                    headers: [("authorization", "Bearer \(secret)"), ("x-request-id", "rk-404")])
        #expect(nowhere.status == 404)
        #expect(try h.row("rk-404")?.keyId == id)
        // A key unknown to the store is still nobody's.
        #expect(try await h.post("/v1/chat/completions", key: "tk-" + String(repeating: "a", count: 40), json: Self.chat,
                                 requestID: "rk-unknown").status == 401)
        let unknown = try #require(try h.row("rk-unknown"))
        #expect(unknown.keyId == nil && unknown.user == nil)
        // The address's 4 rows are used: the revoked key's next refusals are answered, not recorded.
        #expect(try await h.post("/v1/chat/completions", key: secret, json: Self.chat, requestID: "rk-past").status == 401)
        #expect(try h.row("rk-past") == nil)
    }

    @Test("without manage_keys the API lists keys but neither creates nor revokes them")
    func changesNeedTheSetting() async throws {
        let logs = LogCapture()
        let h = try ProxyHarness(logger: logs.logger)
        defer { h.shutdown() }
        #expect(try await send(h, .GET, "/admin/api/keys", key: h.adminKey).status == 200)
        let made = try await send(h, .POST, "/admin/api/keys", key: h.adminKey, json: #"{"user":"dave"}"#)
        #expect(made.status == 403)
        #expect(try errorObject(made)["code"] as? String == "not_permitted")
        #expect(try errorObject(made)["message"] as? String
                == "This gateway does not let the admin API change keys; its gateway.yaml must say admin_api: { manage_keys: true }. tokenctl keys on its host always can.")
        let aliceID = try #require(try listed(try await send(h, .GET, "/admin/api/keys?user=alice", key: h.adminKey))
            .first?["id"] as? String)
        #expect(try await send(h, .DELETE, "/admin/api/keys/\(aliceID)", key: h.adminKey).status == 403)
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "ak-3").status == 200)
        #expect(try h.allRows().count == 1)
        #expect(logs.text.components(separatedBy: "api key change refused").count - 1 == 2)
    }

    @Test("refusals: who may ask, bad bodies and names, admin keys, unknown ids, methods, parameters; none recorded")
    func refusals() async throws {
        let h = try ProxyHarness(gatewayYAML: Self.manageKeys)
        defer { h.shutdown() }
        let dave = #"{"user":"dave"}"#
        #expect(try await send(h, .POST, "/admin/api/keys", key: nil, json: dave).status == 401)
        let caller = try await send(h, .POST, "/admin/api/keys", key: h.aliceKey, json: dave)
        #expect(caller.status == 403)
        #expect(try errorObject(caller)["code"] as? String == "wrong_key_role")

        for (body, status, param) in [
            ("{", 400, "body"), ("[]", 400, "body"), ("", 400, "body"), (#"{"team":"x"}"#, 400, "user"),
            (#"{"user":" alice"}"#, 400, "user"), (#"{"user":"alice\u200b"}"#, 400, "user"),
            (#"{"user":"dave","team":"(none)"}"#, 400, "team"), (#"{"user":"dave","team":5}"#, 400, "team"),
            (#"{"user":"dave","teams":"x"}"#, 400, "teams"), (#"{"user":"dave","admin":true}"#, 403, "admin"),
            (#"{"user":7}"#, 400, "user"), (#"{"user":"dave","admin":"yes"}"#, 400, "admin"),
            // Foundation keeps the last; another reader (a proxy before this one) the first.
            (#"{"user":"dave","user":"erin"}"#, 400, "user"), (#"{"user":"dave","team":null,"team":"x"}"#, 400, "team"),
            (#"{"user":"dave","u\u0073er":"erin"}"#, 400, "user"),
            // Foundation also takes these, and its last value won past a check that gave up on them.
            (#"{"user":"dave","user":"erin",}"#, 400, "body"), ("\u{FEFF}" + #"{"user":"dave","user":"erin"}"#, 400, "body"),
        ] {
            let r = try await send(h, .POST, "/admin/api/keys", key: h.adminKey, json: body)
            #expect(r.status == status, "\(body): \(r.text)")
            #expect(try errorObject(r)["param"] as? String == param, "\(body)")
        }
        let reserved = try await send(h, .POST, "/admin/api/keys", key: h.adminKey, json: #"{"user":"(others)"}"#)
        #expect(try errorObject(reserved)["message"] as? String
                == "user '(others)' is reserved: reports use it to label calls without a user, or folded rows.")

        let asAdmin = try await send(h, .POST, "/admin/api/keys", key: h.adminKey, json: #"{"user":"dave","admin":true}"#)
        #expect(try errorObject(asAdmin)["code"] as? String == "not_permitted")
        #expect(try errorObject(try await send(h, .POST, "/admin/api/keys", key: h.adminKey, json: #"{"user":7}"#))["message"]
                as? String == "user must be a string.")
        let twice = try await send(h, .GET, "/admin/api/keys?user=alice&user=bob", key: h.adminKey)
        #expect(twice.status == 400)
        #expect(try errorObject(twice)["param"] as? String == "user")

        let unknown = try await send(h, .DELETE, "/admin/api/keys/key_000000000000", key: h.adminKey)
        #expect(unknown.status == 404)
        let keys = try listed(try await send(h, .GET, "/admin/api/keys", key: h.adminKey))
        let adminID = try #require(keys.first { $0["role"] as? String == "admin" }?["id"] as? String)
        let adminRevoke = try await send(h, .DELETE, "/admin/api/keys/\(adminID)", key: h.adminKey)
        #expect(adminRevoke.status == 403)
        #expect(try errorObject(adminRevoke)["code"] as? String == "not_permitted")
        #expect(try await send(h, .GET, "/admin/api/health", key: h.adminKey).status == 200)  // still an admin

        let put = try await send(h, .PUT, "/admin/api/keys", key: h.adminKey, json: dave)
        #expect(put.status == 405 && put.header("allow") == "GET, POST")
        let getOne = try await send(h, .GET, "/admin/api/keys/\(adminID)", key: h.adminKey)
        #expect(getOne.status == 405 && getOne.header("allow") == "DELETE")
        let state = try await send(h, .GET, "/admin/api/keys?state=gone", key: h.adminKey)
        #expect(state.status == 400)
        #expect(try errorObject(state)["param"] as? String == "state")
        let colour = try await send(h, .GET, "/admin/api/keys?colour=red", key: h.adminKey)
        #expect(colour.status == 400)
        #expect(try errorObject(colour)["param"] as? String == "colour")

        // Asking for a caller key in so many words is what the API does anyway.
        let explicit = try await send(h, .POST, "/admin/api/keys", key: h.adminKey, json: #"{"user":"erin","admin":false}"#)
        #expect(explicit.status == 201)
        #expect(try jsonObject(explicit)["role"] as? String == "caller")

        // Nothing else was made: the harness's five keys and erin's.
        #expect(try listed(try await send(h, .GET, "/admin/api/keys", key: h.adminKey)).count == 6)
        #expect(try h.allRows().isEmpty)
    }

    @Test("the key list pages: limit keys after a key id, has_more and last_id; a bad limit or an unknown after is a 400")
    func listPages() async throws {
        let h = try ProxyHarness(gatewayYAML: Self.manageKeys)
        defer { h.shutdown() }
        for user in ["dave", "erin", "frank"] {
            #expect(try await send(h, .POST, "/admin/api/keys", key: h.adminKey, json: #"{"user":"\#(user)"}"#).status == 201)
        }
        let everyone = try listed(try await send(h, .GET, "/admin/api/keys?limit=1000", key: h.adminKey)).compactMap { $0["id"] as? String }
        #expect(everyone.count == 8)
        var paged: [String] = [], after: String?, pages: [(count: Int, hasMore: Bool)] = []
        repeat {
            let page = try await send(h, .GET, "/admin/api/keys?limit=3" + (after.map { "&after=\($0)" } ?? ""), key: h.adminKey)
            let object = try jsonObject(page)
            let ids = try listed(page).compactMap { $0["id"] as? String }
            #expect(object["first_id"] as? String == ids.first && object["last_id"] as? String == ids.last)
            pages.append((ids.count, object["has_more"] as? Bool == true))
            paged += ids
            after = object["has_more"] as? Bool == true ? ids.last : nil
        } while after != nil && pages.count < 10
        #expect(paged == everyone)
        #expect(pages.map(\.count) == [3, 3, 2] && pages.map(\.hasMore) == [true, true, false])

        // Filters and pages together; an empty page.
        let active = try await send(h, .GET, "/admin/api/keys?state=active&limit=2&after=\(everyone[6])", key: h.adminKey)
        #expect(try listed(active).compactMap { $0["id"] as? String } == [everyone[7]])
        let past = try jsonObject(try await send(h, .GET, "/admin/api/keys?after=\(everyone[7])", key: h.adminKey))
        #expect((past["data"] as? [Any])?.isEmpty == true && past["has_more"] as? Bool == false && past["last_id"] is NSNull)

        for (query, param) in [("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"), ("after=", "after"),
                               ("after=key_000000000000", "after")] {
            let r = try await send(h, .GET, "/admin/api/keys?\(query)", key: h.adminKey)
            #expect(r.status == 400, "\(query): \(r.text)")
            #expect(try errorObject(r)["param"] as? String == param, "\(query)")
        }
    }
}

import Foundation
import Ledger
import Metering
import NIOCore
import Policy

/// `/admin/api/keys`: caller keys for provisioning scripts and self-service portals, as
/// `tokenctl keys` makes them on the host. Listing is a read, open to every admin key; creating
/// and revoking need `admin_api: { manage_keys: true }`. Admin keys are listed but neither made
/// nor revoked here: one leaked admin key must not be able to mint others or lock admins out.
enum AdminKeys {
    /// The body of `POST /admin/api/keys`: `{"user": "alice", "team": "research"}` (team optional).
    struct Creation: Equatable {
        var user: String
        var team: String?

        static let fields: Set<String> = ["user", "team", "admin"]

        init(user: String, team: String? = nil) {
            self.user = user
            self.team = team
        }

        /// Parses and checks the body as `tokenctl keys create` checks its options.
        init(body: ByteBuffer) throws(Refusal) {
            let object: [String: Any]
            do {
                guard let parsed = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
                    throw AdminReportRequest.bad("body", "The body must be a JSON object: {\"user\": \"NAME\", \"team\": \"TEAM\"} (team optional).")
                }
                object = parsed
            } catch let refusal as Refusal {
                throw refusal
            } catch {
                throw AdminReportRequest.bad("body", "The body is not valid JSON; send {\"user\": \"NAME\", \"team\": \"TEAM\"} (team optional).")
            }
            let repeated: String?
            do {
                repeated = try body.withUnsafeReadableBytes { bytes throws(JSONMemberNames.NotAnObject) in
                    try JSONMemberNames.repeated(in: bytes)
                }
            } catch {
                throw AdminReportRequest.bad("body", "The body is not strict JSON (a byte-order mark, UTF-16 or a trailing comma); send {\"user\": \"NAME\", \"team\": \"TEAM\"} (team optional).")
            }
            if let name = repeated {
                throw AdminReportRequest.bad(name, "Field '\(name.prefix(100))' is given more than once.")
            }
            switch object["admin"] {
            case nil: break
            case let flag as Bool where flag == false: break  // what the API makes anyway
            case let flag as Bool where flag == true:
                throw Refusal(.notPermitted, "Admin keys are made only with `tokenctl keys create --admin` on the gateway's host.",
                              field: "admin")
            default:
                throw AdminReportRequest.bad("admin", "admin must be true or false (the API makes caller keys only).")
            }
            if let unknown = object.keys.sorted().first(where: { !Self.fields.contains($0) }) {
                throw AdminReportRequest.bad(unknown, "Unknown field '\(unknown.prefix(100))'; a key takes user and team.")
            }
            guard let sent = object["user"] else {
                throw AdminReportRequest.bad("user", "user is required: the name the key's calls are billed to.")
            }
            guard let user = sent as? String else { throw AdminReportRequest.bad("user", "user must be a string.") }
            let team: String?
            switch object["team"] {
            case nil, is NSNull: team = nil
            case let name as String: team = name
            default: throw AdminReportRequest.bad("team", "team must be a string (or null for none).")
            }
            for (field, value) in [("user", user), ("team", team)] {
                if let value, let problem = ReportDimension.problem(asKeyOwner: value, noun: field) {
                    throw AdminReportRequest.bad(field, "\(field) \(problem).")
                }
            }
            self.init(user: user, team: team)
        }
    }

    /// `GET /admin/api/keys`: filters `user`, `team`, `state` (`active`, `revoked`; default
    /// all), and a page, as OpenAI's lists page: `limit` (1–1000, default 100) keys `after` a
    /// key id (the previous page's `last_id`).
    struct Listing: Equatable {
        static let defaultLimit = 100
        static let maxLimit = 1000
        /// The page asked for; `after` is set once the `after` key is found.
        var query = KeyQuery(limit: defaultLimit)
        /// The key the page starts after.
        var afterID: String?

        init(queryString: String?) throws(Refusal) {
            var seen = Set<String>()
            for (name, value) in try AdminReportRequest.items(queryString) {
                guard seen.insert(name).inserted else { throw AdminReportRequest.bad(name, "'\(name.prefix(100))' may be given once.") }
                switch name {
                case "user": query.user = value
                case "team": query.team = value
                case "state":
                    guard value == "active" || value == "revoked" else {
                        throw AdminReportRequest.bad("state", "state must be active or revoked (omit it for all keys).")
                    }
                    query.revoked = value == "revoked"
                case "limit":
                    guard let limit = Int(value), (1...Self.maxLimit).contains(limit) else {
                        throw AdminReportRequest.bad("limit", "limit must be a whole number from 1 to \(Self.maxLimit).")
                    }
                    query.limit = limit
                case "after":
                    guard !value.isEmpty else { throw AdminReportRequest.bad("after", "after must be a key id (the last_id of the previous page).") }
                    afterID = value
                default:
                    throw AdminReportRequest.bad(name,
                        "Unknown parameter '\(name.prefix(100))'; /admin/api/keys takes user, team, state, limit and after.")
                }
            }
        }

        /// The page's keys from `store`: one more than the page holds is read, to know if more follow.
        func page(in store: any APIKeyStore) throws -> Result<(keys: [APIKeyRecord], hasMore: Bool), Refusal> {
            var query = self.query
            if let afterID {
                guard let after = try store.key(id: afterID) else {
                    return .failure(AdminReportRequest.bad("after", "No key with id \(afterID.prefix(100)) to list after."))
                }
                query.after = KeyCursor(after: after)
            }
            let limit = query.limit ?? Self.defaultLimit
            query.limit = limit + 1
            let keys = try store.keys(query)
            return .success((Array(keys.prefix(limit)), keys.count > limit))
        }
    }

    /// `{"data":[…],"has_more":…,"first_id":…,"last_id":…}`, oldest first: ids, owners, role and
    /// state, never secrets or hashes.
    static func list(_ keys: [APIKeyRecord], hasMore: Bool) -> String {
        "{\"data\":[" + keys.map { describe($0) + "}" }.joined(separator: ",") + "],\"has_more\":\(hasMore)"
            + ",\"first_id\":" + (keys.first.map { JSONString.literal($0.id) } ?? "null")
            + ",\"last_id\":" + (keys.last.map { JSONString.literal($0.id) } ?? "null") + "}\n"
    }

    /// The new key, with its secret: shown this once.
    static func created(_ key: APIKeyRecord, secret: String) -> String {
        describe(key) + ",\"secret\":" + JSONString.literal(secret) + "}\n"
    }

    static func revoked(_ key: APIKeyRecord) -> String {
        describe(key) + "}\n"
    }

    /// A key's public fields, as an unclosed JSON object.
    private static func describe(_ key: APIKeyRecord) -> String {
        "{\"id\":" + JSONString.literal(key.id) + ",\"user\":" + JSONString.literal(key.user)
            + ",\"team\":" + (key.team.map(JSONString.literal) ?? "null")
            + ",\"role\":\"" + (key.admin ? "admin" : "caller") + "\""
            + ",\"created_at\":" + (key.createdAt.map(AdminAPI.time) ?? "null")
            + ",\"revoked_at\":" + (key.revokedAt.map(AdminAPI.time) ?? "null")
    }
}

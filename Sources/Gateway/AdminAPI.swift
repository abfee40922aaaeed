import Foundation
import Ledger
import Logging
import Metering
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Policy
import PostgresLedger
import Reports

/// `/admin/api/…`: JSON views of the ledger and of the live gateway for admin keys, and caller
/// keys made and revoked (`AdminKeys`, when `admin_api.manage_keys` allows).
///
/// Identification is a memory look-up on the event loop; the ledger queries run on their own
/// thread (a `NIOThreadPool` of one) over a read-only connection, so a long report never stalls a
/// proxied call. Admin requests are not recorded in the ledger: it holds model calls only (key
/// changes are logged, with the admin key that made them).
final class AdminAPI: Sendable {
    /// What to send back: status, content type and body.
    struct Answer: Sendable {
        var status: Int
        var body: String
        var headers: [(String, String)] = []

        static func json(_ body: String) -> Answer { Answer(status: 200, body: body) }
        static func refusal(_ refusal: Refusal) -> Answer {
            Answer(status: refusal.status, body: refusal.body(in: .openai), headers: refusal.headers)
        }
    }

    private let gateway: GatewayContext
    private let pool: NIOThreadPool
    private let reader: any LedgerSource
    /// The gateway's key store (the one its `PrincipalDirectory` polls).
    private let keys: any APIKeyStore
    /// The last health answer, reused while `AdminHealth.Reading.isFresh`.
    private let lastHealth = NIOLockedValueBox<AdminHealth.Reading?>(nil)

    init(gateway: GatewayContext, ledger: LedgerBackend, keys: any APIKeyStore) throws {
        self.gateway = gateway
        self.keys = keys
        reader = try ledger.openSource(readOnly: true)
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
    }

    func shutdown() {
        try? pool.syncShutdownGracefully()
        reader.close()
    }

    /// The admin API's routes and the methods each answers.
    enum Route: Equatable {
        case report, health, keys
        /// `/admin/api/keys/{id}`.
        case key(id: String)

        static let keysPrefix = "/admin/api/keys/"

        init?(path: String) {
            switch path {
            case "/admin/api/report": self = .report
            case "/admin/api/health": self = .health
            case "/admin/api/keys": self = .keys
            default:
                guard path.hasPrefix(Self.keysPrefix), path.count > Self.keysPrefix.count else { return nil }
                self = .key(id: String(path.dropFirst(Self.keysPrefix.count)))
            }
        }

        var methods: [HTTPMethod] {
            switch self {
            case .report, .health: [.GET]
            case .keys: [.GET, .POST]
            case .key: [.DELETE]
            }
        }
    }

    /// Answers one admin request; the future completes on `loop`.
    func answer(method: HTTPMethod, path: String, queryString: String?, secret: String?, body: ByteBuffer,
                from peer: SocketAddress?, on loop: any EventLoop) -> EventLoopFuture<Answer> {
        let admin: Principal
        switch Self.authorise(secret: secret, in: gateway.principals) {
        case .failure(let refusal):
            noteRefused(method: method, path: path, refusal, from: peer, on: loop)
            return loop.makeSucceededFuture(.refusal(refusal))
        case .success(let principal):
            admin = principal
        }
        guard let route = Route(path: path) else {
            return loop.makeSucceededFuture(.refusal(Refusal(
                .notFound, "Unknown admin route \(path.prefix(200)); see /admin/api/report, /admin/api/health and /admin/api/keys.")))
        }
        guard route.methods.contains(method) else {
            let allowed = route.methods.map(\.rawValue).joined(separator: ", ")
            return loop.makeSucceededFuture(.refusal(Refusal(
                .methodNotAllowed, "\(method.rawValue) is not supported on \(path.prefix(200)); use \(allowed).",
                headers: [("allow", allowed)])))
        }
        let now = UnixTime.nowMicros()
        switch route {
        case .keys, .key:
            return answerKeys(route, method: method, queryString: queryString, body: body, admin: admin, now: now, on: loop)
        case .report:
            let request: AdminReportRequest
            do {
                request = try AdminReportRequest(queryString: queryString, now: now,
                                                 defaultTimeZone: gateway.policies.policy.plans.timeZone)
            } catch {
                return loop.makeSucceededFuture(.refusal(error))
            }
            let reader = self.reader
            let plans = gateway.policies.policy.plans
            let ledger = gateway.ledger
            return pool.runIfActive(eventLoop: loop) {
                Self.awaitAnsweredCalls(in: ledger)
                let report = try reader.report(request.query).top(request.top)
                let summary = request.summary
                    ? try ReportSummary.compute(reader: reader, query: request.query, plans: request.budgets ? plans : nil,
                                                now: now, models: false)
                    : nil
                return .json(ReportRenderer.render(report, query: request.query, format: .json, summary: summary))
            }.flatMapErrorThrowing(Self.failure)
        case .health:
            let items = (try? AdminReportRequest.items(queryString)) ?? [("query", "")]
            if let name = items.first?.0 {
                return loop.makeSucceededFuture(.refusal(AdminReportRequest.bad(name, "'\(name)': /admin/api/health takes no parameters.")))
            }
            let gateway = self.gateway, reader = self.reader, lastHealth = self.lastHealth
            return pool.runIfActive(eventLoop: loop) {
                if let last = lastHealth.withLockedValue({ $0 }), last.isFresh(at: now) { return .json(last.body) }
                let started = UnixTime.nowMicros()
                Self.awaitAnsweredCalls(in: gateway.ledger)
                let body = try AdminHealth.render(gateway: gateway, reader: reader, now: now)
                lastHealth.withLockedValue {
                    $0 = AdminHealth.Reading(at: now, tookMicros: UnixTime.nowMicros() - started, body: body)
                }
                return .json(body)
            }.flatMapErrorThrowing(Self.failure)
        }
    }

    /// `/admin/api/keys` (list, create) and `/admin/api/keys/{id}` (revoke). A change reaches
    /// the gateway's keys in memory before it is answered, so a new key works, and a revoked one
    /// is refused, from the next request on (whether or not the store can be read again then).
    private func answerKeys(_ route: Route, method: HTTPMethod, queryString: String?, body: ByteBuffer,
                            admin: Principal, now: Int64, on loop: any EventLoop) -> EventLoopFuture<Answer> {
        let keys = self.keys, principals = gateway.principals, logger = gateway.logger
        if method == .GET {
            let listing: AdminKeys.Listing
            do { listing = try AdminKeys.Listing(queryString: queryString) } catch {
                return loop.makeSucceededFuture(.refusal(error))
            }
            return pool.runIfActive(eventLoop: loop) {
                switch try listing.page(in: keys) {
                case .success(let page): .json(AdminKeys.list(page.keys, hasMore: page.hasMore))
                case .failure(let refusal): .refusal(refusal)
                }
            }.flatMapErrorThrowing(Self.failure)
        }
        // A change refused is logged as a change made is: who tried what.
        @Sendable func refusedChange(_ refusal: Refusal) -> Answer {
            logger.notice("api key change refused", metadata: [
                "method": "\(method.rawValue)", "path": "\(route == .keys ? "/admin/api/keys" : "/admin/api/keys/…")",
                "status": "\(refusal.status)", "reason": "\(refusal.message.prefix(120))", "by": "\(admin.keyId)",
            ])
            return .refusal(refusal)
        }
        guard gateway.policies.policy.gateway.adminAPI.manageKeys else {
            return loop.makeSucceededFuture(refusedChange(Refusal(.notPermitted,
                "This gateway does not let the admin API change keys; its gateway.yaml must say admin_api: { manage_keys: true }. tokenctl keys on its host always can.")))
        }
        switch route {
        case .key(let id):
            return pool.runIfActive(eventLoop: loop) {
                guard let key = try keys.key(id: id) else {
                    return .refusal(Refusal(.notFound, "No key with id \(id.prefix(100)).", field: "id"))
                }
                if key.admin {
                    return refusedChange(Refusal(.notPermitted,
                        "Admin keys are revoked only with `tokenctl keys revoke` on the gateway's host."))
                }
                // Revoking again answers as the first time did: the key stays revoked since then.
                // One revoked elsewhere (`tokenctl keys revoke`, another replica), before or
                // while this runs, is refused here from now on too, before the key poll sees it.
                var revoked = key
                if !key.isRevoked {
                    revoked.revokedAt = now
                    if try keys.revoke(id: id, at: now) {
                        logger.notice("api key revoked through the admin API",
                                      metadata: ["key": "\(id)", "user": "\(key.user)", "by": "\(admin.keyId)"])
                    } else {
                        revoked = try keys.key(id: id) ?? revoked
                    }
                }
                principals.forget(key)
                return .json(AdminKeys.revoked(revoked))
            }.flatMapErrorThrowing(Self.failure)
        default:
            let creation: AdminKeys.Creation
            do { creation = try AdminKeys.Creation(body: body) } catch {
                return loop.makeSucceededFuture(error.kind == .notPermitted ? refusedChange(error) : .refusal(error))
            }
            return pool.runIfActive(eventLoop: loop) {
                let (id, secret) = APIKeySecret.generate()
                let key = APIKeyRecord(id: id, secretHash: APIKeySecret.hash(secret), user: creation.user,
                                       team: creation.team, createdAt: now)
                try keys.insert(key)
                principals.admit(key)
                logger.notice("api key created through the admin API",
                              metadata: ["key": "\(id)", "user": "\(creation.user)", "team": "\(creation.team ?? "-")",
                                         "by": "\(admin.keyId)"])
                var answer = Answer.json(AdminKeys.created(key, secret: secret))
                answer.status = 201
                return answer
            }.flatMapErrorThrowing(Self.failure)
        }
    }

    /// Admin reads of the ledger include the calls answered so far, which the writer commits up to
    /// its linger after their answers (`LedgerJournal`). Bounded, so that failing commits cannot
    /// hold the admin thread: the read then goes without them.
    private static func awaitAnsweredCalls(in ledger: any LedgerSink) {
        _ = ledger.flush(timeout: .milliseconds(500))
    }

    /// 401 without a key or with an unknown one; 403 for a valid key that is not an admin key.
    /// `what`: the page refused, in the message.
    static func authorise(secret: String?, in principals: PrincipalDirectory,
                          reading what: String = "the admin API") -> Result<Principal, Refusal> {
        switch Admit.identify(secret: secret, dialect: .openai, in: principals) {
        case .failure(let refusal):
            return .failure(refusal)
        case .success(let principal) where !principal.isAdmin:
            return .failure(Refusal(.wrongKeyRole,
                "This key may call models but not use \(what); use an admin key (tokenctl keys create --admin)."))
        case .success(let principal):
            return .success(principal)
        }
    }

    /// A line in the log; for a request without a known key only within `unknown_callers`, as a
    /// row on a model route, on meters of their own (past it, tallied in the minute's summary).
    func noteRefused(method: HTTPMethod, path: String, _ refusal: Refusal, from peer: SocketAddress?, on loop: any EventLoop) {
        if refusal.kind == .unauthenticated,
           !gateway.unknownAdminCallers.mayRecord(from: peer, gateway.policies.policy.gateway.unknownCallers,
                                             now: UnixTime.nowMicros(), on: loop) { return }
        gateway.logger.notice("admin request refused", metadata: [
            "method": "\(method.rawValue)", "path": "\(path.prefix(100))", "status": "\(refusal.status)",
        ])
    }

    /// An instant (Unix µs) as the admin API writes it: a JSON string, ISO 8601 UTC, to the second.
    static func time(_ micros: Int64) -> String {
        JSONString.literal(Date(timeIntervalSince1970: Double(micros / 1_000_000)).formatted(.iso8601))
    }

    /// A ledger read or write that failed (busy for longer than the timeout, disk error) or a stopped pool.
    private static func failure(_ error: any Error) -> Answer {
        let message = "The ledger could not be read or written: \(error)"
        return Answer(status: 503, body: #"{"error":{"message":\#(JSONString.literal(message)),"type":"api_error","param":null,"code":"ledger_unavailable"}}"#)
    }
}

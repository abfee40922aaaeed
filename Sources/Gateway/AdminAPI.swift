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

/// `/admin/api/…`: read-only JSON views of the ledger and of the live gateway, for admin keys.
///
/// Identification is a memory look-up on the event loop; the ledger queries run on their own
/// thread (a `NIOThreadPool` of one) over a read-only connection, so a long report never stalls a
/// proxied call. Admin requests are not recorded in the ledger: it holds model calls only.
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
    /// The last health answer, reused while `AdminHealth.Reading.isFresh`.
    private let lastHealth = NIOLockedValueBox<AdminHealth.Reading?>(nil)

    init(gateway: GatewayContext, ledger: LedgerBackend) throws {
        self.gateway = gateway
        reader = try ledger.openSource(readOnly: true)
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
    }

    func shutdown() {
        try? pool.syncShutdownGracefully()
        reader.close()
    }

    static let routes: Set<String> = ["/admin/api/report", "/admin/api/health"]

    /// Answers one admin request; the future completes on `loop`.
    func answer(method: HTTPMethod, path: String, queryString: String?, secret: String?,
                on loop: any EventLoop) -> EventLoopFuture<Answer> {
        switch Self.authorise(secret: secret, in: gateway.principals) {
        case .failure(let refusal):
            gateway.logger.notice("admin request refused", metadata: ["path": "\(path.prefix(100))",
                                                                      "status": "\(refusal.status)"])
            return loop.makeSucceededFuture(.refusal(refusal))
        case .success:
            break
        }
        // An unknown route is 404 whatever the method; a known one only answers GET.
        guard method == .GET || !Self.routes.contains(path) else {
            return loop.makeSucceededFuture(.refusal(Refusal(
                .methodNotAllowed, "\(method.rawValue) is not supported on \(path); the admin API is read-only, use GET.",
                headers: [("allow", "GET")])))
        }
        let now = UnixTime.nowMicros()
        switch path {
        case "/admin/api/report":
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
        case "/admin/api/health":
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
        default:
            return loop.makeSucceededFuture(.refusal(Refusal(
                .notFound, "Unknown admin route \(path.prefix(200)); see /admin/api/report and /admin/api/health.")))
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
                "This key may call models but not read \(what); use an admin key (tokenctl keys create --admin)."))
        case .success(let principal):
            return .success(principal)
        }
    }

    /// A ledger read that failed (busy for longer than the timeout, disk error) or a stopped pool.
    private static func failure(_ error: any Error) -> Answer {
        let message = "The ledger could not be read: \(error)"
        return Answer(status: 503, body: #"{"error":{"message":\#(JSONString.literal(message)),"type":"api_error","param":null,"code":"ledger_unavailable"}}"#)
    }
}

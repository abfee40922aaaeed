import Foundation
import Ledger
import Metering
import Policy
import Reports

/// The body of `GET /admin/api/health`: live gauges of this process, the last hour's calls from
/// the ledger, and budget use from the quota book. Runs off the event loop (it reads the ledger).
enum AdminHealth {
    /// The window of the "recent" figures and of the per-minute series.
    static let windowMicros: Int64 = 3_600_000_000
    /// Budgets listed, the most used first.
    static let maxBudgets = 100

    /// One computed answer. Computing it reads the last hour of the ledger, which at 150 calls/s
    /// took 400 ms (a soak trial) and grows with the hour's calls: an answer that took long is
    /// reused for a while, so that dashboards polling it keep the admin thread free at most a
    /// sixth of the time. Its `now` says when it was computed. Quick ones are never reused.
    struct Reading: Sendable {
        var at: Int64
        var tookMicros: Int64
        var body: String

        static let reusedFrom: Int64 = 50_000
        static let reuseFactor: Int64 = 5

        func isFresh(at now: Int64) -> Bool {
            tookMicros >= Self.reusedFrom && now >= at && now - at < Self.reuseFactor * tookMicros
        }
    }

    static func render(gateway: GatewayContext, reader: any LedgerSource, now: Int64) throws -> String {
        let policy = gateway.policies.policy
        let since = now - windowMicros
        let recent = try reader.report(ReportQuery(since: since, until: now + 1)).totals
        let minutes = try reader.activityPerMinute(since: since, until: now + 1)

        var out = "{\"now\":" + AdminAPI.time(now)
        out += ",\"policy\":{\"version\":" + JSONString.literal(policy.version)
        out += ",\"reload_errors\":\(gateway.policies.failedReloads)"
        out += ",\"last_reload_error\":" + (gateway.policies.lastError.map(JSONString.literal) ?? "null")
        out += ",\"time_zone\":" + JSONString.literal(ZoneName.of(policy.plans.timeZone)) + "}"
        out += ",\"calls_in_flight\":\(gateway.enforcer.concurrency.totalInFlight)"
        out += ",\"open_reservations\":\(gateway.enforcer.openReservations)"
        out += ",\"ledger_backlog\":\(gateway.ledger.backlog)"

        let upstreamCalls = recent.requests - recent.refused
        out += ",\"last_hour\":{\"since\":" + AdminAPI.time(since) + ",\"until\":" + AdminAPI.time(now)
        out += ",\"requests\":\(recent.requests),\"refused\":\(recent.refused),\"errors\":\(recent.errors)"
        out += ",\"error_rate\":" + ratio(recent.errors, upstreamCalls)
        out += ",\"latency_mean_ms\":" + millis(recent.latencyMeanMicros)
        out += ",\"latency_p50_ms\":" + millis(recent.latencyP50Micros)
        out += ",\"latency_p95_ms\":" + millis(recent.latencyP95Micros)
        out += ",\"ttft_p50_ms\":" + millis(recent.ttftP50Micros)
        out += ",\"cost_usd\":" + JSONString.literal(recent.cost.formatted(decimals: 6)) + "}"

        out += ",\"per_minute\":[" + minutes.map { m in
            "{\"minute\":" + AdminAPI.time(m.minute) + ",\"requests\":\(m.requests),\"refused\":\(m.refused),\"errors\":\(m.errors)"
                + ",\"latency_mean_ms\":"
                + millis(m.timedRequests == 0 ? nil : m.latencySumMicros / Int64(m.timedRequests)) + "}"
        }.joined(separator: ",") + "]"

        out += ",\"budgets\":[" + (try budgets(gateway: gateway, plans: policy.plans, now: now)).joined(separator: ",") + "]}\n"
        return out
    }

    /// Every budget that applies to a payer with an active key (and the org's), in its current
    /// period: the limit, what is used (spent plus reserved for calls in flight) and its share.
    private static func budgets(gateway: GatewayContext, plans: PlanBook, now: Int64) throws -> [String] {
        var limits = plans.orgBudgets
        for principal in gateway.principals.all where !principal.isAdmin {
            limits += plans.effectivePlan(user: principal.user, team: principal.team).budgets
        }
        struct ScopePeriod: Hashable { var scope: PayerScope, period: BudgetPeriod }
        var seen = Set<ScopePeriod>()
        limits = limits.filter { seen.insert(ScopePeriod(scope: $0.scope, period: $0.period)).inserted }
        let standings = try gateway.enforcer.remainingBlocking(budgets: limits, now: now,
                                                               timeZone: gateway.enforcer.budgetTimeZone(gateway.policies.policy))
        return mostUsed(standings).map { share, standing in
            let limit = standing.limit
            var json = "{\"scope\":"
            switch limit.scope {
            case .org: json += "\"org\",\"name\":null"
            case .team(let name): json += "\"team\",\"name\":" + JSONString.literal(name)
            case .user(let name): json += "\"user\",\"name\":" + JSONString.literal(name)
            }
            json += ",\"period\":\"\(limit.period.rawValue)\",\"resets_at\":" + AdminAPI.time(standing.resetsAt)
            if let usd = limit.usd, let left = standing.usdLeft {
                let used = Money(picodollars: usd.picodollars - left.picodollars)
                json += ",\"limit_usd\":" + JSONString.literal(usd.formatted()) + ",\"used_usd\":" + JSONString.literal(used.formatted())
            } else {
                json += ",\"limit_usd\":null,\"used_usd\":null"
            }
            if let tokens = limit.tokens, let left = standing.tokensLeft {
                json += ",\"limit_tokens\":\(tokens),\"used_tokens\":\(tokens - left)"
            } else {
                json += ",\"limit_tokens\":null,\"used_tokens\":null"
            }
            return json + ",\"used_share\":" + String(format: "%.4f", share) + "}"
        }
    }

    /// The `maxBudgets` most used budgets, with their shares, most used first. Only these are
    /// rendered: rendering all 40,000 budgets of 20,000 payers took 0.3 s.
    static func mostUsed(_ standings: [QuotaStanding]) -> ArraySlice<(share: Double, standing: QuotaStanding)> {
        standings.map { (share: share(of: $0), standing: $0) }.sorted { $0.share > $1.share }.prefix(maxBudgets)
    }

    /// The larger of the money and token shares used (1 for a zero limit).
    private static func share(of standing: QuotaStanding) -> Double {
        var share = 0.0
        if let usd = standing.limit.usd, let left = standing.usdLeft {
            share = usd.picodollars > 0 ? Double(usd.picodollars - left.picodollars) / Double(usd.picodollars) : 1
        }
        if let tokens = standing.limit.tokens, let left = standing.tokensLeft {
            share = max(share, tokens > 0 ? Double(tokens - left) / Double(tokens) : 1)
        }
        return share
    }

    private static func millis(_ micros: Int64?) -> String {
        guard let micros else { return "null" }
        return String(micros / 1_000) + "." + String(format: "%03lld", micros % 1_000)
    }

    private static func ratio(_ part: Int, _ whole: Int) -> String {
        whole == 0 ? "null" : String(format: "%.4f", Double(part) / Double(whole))
    }
}

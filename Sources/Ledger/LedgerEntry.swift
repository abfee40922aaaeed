import Metering

/// How a call ended, from the proxy's point of view. Stored as its raw text, so new cases can be
/// added without a migration; reports treat every value starting with `refused_` as a refusal.
public enum Outcome: String, Sendable, Hashable, CaseIterable, Codable {
    case ok
    /// The provider answered with an error status.
    case upstreamError = "upstream_error"
    /// The provider could not be reached (DNS, connect, TLS).
    case upstreamUnreachable = "upstream_unreachable"
    /// The call's deadline passed.
    case timeout
    /// The client went away; the upstream transfer was cancelled.
    case clientCancelled = "client_cancelled"
    /// The call was in flight when the process stopped (recorded at restart).
    case interrupted
    case refusedAuth = "refused_auth"
    case refusedBadRequest = "refused_bad_request"
    case refusedTooLarge = "refused_too_large"
    case refusedNotFound = "refused_not_found"
    case refusedUnknownModel = "refused_unknown_model"
    case refusedUnpriced = "refused_unpriced"
    /// The payer's plan does not allow the model.
    case refusedModel = "refused_model"
    /// Too many calls in flight for the payer (`max_concurrent`).
    case refusedConcurrency = "refused_concurrency"
    /// A requests- or tokens-per-minute limit.
    case refusedRate = "refused_rate"
    /// The asked output is over the plan's cap and the plan rejects instead of clamping.
    case refusedCap = "refused_cap"
    /// A user, team or org budget cannot pay for the call's worst case.
    case refusedQuota = "refused_quota"
    /// The org-wide spend rate is over its limit.
    case refusedBreaker = "refused_breaker"
    /// The provider's `max_concurrent` slots were taken and its wait queue full or timed out.
    case refusedProviderBusy = "refused_provider_busy"
    /// Budgets shared through PostgreSQL could not be reserved (unreachable, an error, no answer
    /// in time): refused, since no call goes upstream unbudgeted.
    case refusedUnavailable = "refused_unavailable"
    /// A repeat of a completed call with the same `Idempotency-Key`: its recorded answer was
    /// sent again, with no upstream call and no charge.
    case replayed

    /// Raw values with this prefix are refusals: the proxy answered without calling upstream.
    public static let refusalPrefix = "refused_"

    public var isRefusal: Bool { rawValue.hasPrefix(Outcome.refusalPrefix) }

    /// A refusal's outcome without `refused_` (`auth`, `rate`, …): the metrics' reason label.
    public var refusalReason: String { String(rawValue.dropFirst(Outcome.refusalPrefix.count)) }

    /// Failures on the provider side or in transit (not the caller's doing, not a refusal).
    public var isError: Bool {
        switch self {
        case .upstreamError, .upstreamUnreachable, .timeout, .interrupted: return true
        default: return false
        }
    }
}

/// One call as recorded in the ledger: who, what, how it ended, tokens and exact cost.
/// Times are Unix microseconds (UTC).
public struct LedgerEntry: Sendable, Hashable {
    /// A request id the gateway made is this and the row's `id`: the ledger finds it through the
    /// index of `id` and indexes only the ids clients sent (`Schema` v7).
    public static let madeRequestIDPrefix = "req_"

    /// Unique id of the call (primary key of the row).
    public var id: String
    /// The `x-request-id` the client sent or was given, for correlation with logs. One the
    /// gateway made is `madeRequestIDPrefix` and `id`.
    public var requestId: String
    public var startedAt: Int64
    public var firstByteAt: Int64?
    public var endedAt: Int64
    public var keyId: String?
    public var user: String?
    public var team: String?
    public var dialect: Dialect
    /// The operation, e.g. `chat.completions` (an `Endpoint` raw value, or another route name).
    public var route: String
    public var provider: String?
    public var modelRequested: String?
    public var modelServed: String?
    public var stream: Bool
    /// HTTP status returned to the client.
    public var status: Int
    public var outcome: Outcome
    public var usage: Usage
    public var usageSource: UsageSource
    public var cost: Money
    /// The per-token prices the cost was computed with, stored in the row so that a later price
    /// change never rewrites history. Only the prices and the id are stored: `source` reads back empty.
    public var price: ModelPrice?
    public var ttftMicros: Int64?
    public var upstreamMicros: Int64?
    public var errorMessage: String?
    /// The payer's plan when the call was admitted (nil before plans, or when refused earlier).
    public var plan: String?
    /// The output cap the client asked for, and the one sent upstream after clamping/injection.
    public var outputCapRequested: Int?
    public var outputCapApplied: Int?
    /// `RequestFingerprint` of the request body as the client sent it: equal bodies from the same
    /// user within a short time are retries or regenerations. Nil for calls refused before the body was read.
    public var requestHash: Int64?

    /// `<model pattern>@<effective day>` of the price used, as stored in `price_id`.
    public var priceId: String? { price?.id }

    /// Adds `note` after what `errorMessage` already says ("…; note"), without the full stop a
    /// provider's message often ends with ("…'stream_options'.; tokenctl…" read badly).
    public mutating func appendNote(_ note: String) {
        guard var message = errorMessage else {
            errorMessage = note
            return
        }
        if message.hasSuffix("."), !message.hasSuffix("..") { message.removeLast() }
        errorMessage = "\(message); \(note)"
    }

    /// Total time the proxy spent on the call.
    public var latencyMicros: Int64 { endedAt - startedAt }

    public init(id: String, requestId: String, startedAt: Int64, firstByteAt: Int64? = nil, endedAt: Int64,
                keyId: String? = nil, user: String? = nil, team: String? = nil,
                dialect: Dialect, route: String, provider: String? = nil,
                modelRequested: String? = nil, modelServed: String? = nil, stream: Bool = false,
                status: Int, outcome: Outcome, usage: Usage = .zero, usageSource: UsageSource = .none,
                cost: Money = .zero, price: ModelPrice? = nil,
                ttftMicros: Int64? = nil, upstreamMicros: Int64? = nil, errorMessage: String? = nil,
                plan: String? = nil, outputCapRequested: Int? = nil, outputCapApplied: Int? = nil,
                requestHash: Int64? = nil) {
        self.id = id
        self.requestId = requestId
        self.startedAt = startedAt
        self.firstByteAt = firstByteAt
        self.endedAt = endedAt
        self.keyId = keyId
        self.user = user
        self.team = team
        self.dialect = dialect
        self.route = route
        self.provider = provider
        self.modelRequested = modelRequested
        self.modelServed = modelServed
        self.stream = stream
        self.status = status
        self.outcome = outcome
        self.usage = usage
        self.usageSource = usageSource
        self.cost = cost
        self.price = price
        self.ttftMicros = ttftMicros
        self.upstreamMicros = upstreamMicros
        self.errorMessage = errorMessage
        self.plan = plan
        self.outputCapRequested = outputCapRequested
        self.outputCapApplied = outputCapApplied
        self.requestHash = requestHash
    }
}

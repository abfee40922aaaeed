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
///
/// Its fields sit in one box its copies share (`SharedFields`): a row passes through several hands
/// on the event loop (settled, recorded, journaled, queued for the writer), and copying its two
/// dozen fields, a dozen of them strings, at each hand-off cost 600 retains and releases per call.
public struct LedgerEntry: Sendable, Hashable {
    /// A request id the gateway made is this and the row's `id`: the ledger finds it through the
    /// index of `id` and indexes only the ids clients sent (`Schema` v7).
    public static let madeRequestIDPrefix = "req_"

    private var shared: SharedFields<Fields>

    /// Unique id of the call (primary key of the row).
    public var id: String { get { shared.box.fields.id } set { shared.update { $0.id = newValue } } }
    /// The `x-request-id` the client sent or was given, for correlation with logs. One the
    /// gateway made is `madeRequestIDPrefix` and `id`.
    public var requestId: String { get { shared.box.fields.requestId } set { shared.update { $0.requestId = newValue } } }
    public var startedAt: Int64 { get { shared.box.fields.startedAt } set { shared.update { $0.startedAt = newValue } } }
    public var firstByteAt: Int64? { get { shared.box.fields.firstByteAt } set { shared.update { $0.firstByteAt = newValue } } }
    public var endedAt: Int64 { get { shared.box.fields.endedAt } set { shared.update { $0.endedAt = newValue } } }
    public var keyId: String? { get { shared.box.fields.keyId } set { shared.update { $0.keyId = newValue } } }
    public var user: String? { get { shared.box.fields.user } set { shared.update { $0.user = newValue } } }
    public var team: String? { get { shared.box.fields.team } set { shared.update { $0.team = newValue } } }
    public var dialect: Dialect { get { shared.box.fields.dialect } set { shared.update { $0.dialect = newValue } } }
    /// The operation, e.g. `chat.completions` (an `Endpoint` raw value, or another route name).
    public var route: String { get { shared.box.fields.route } set { shared.update { $0.route = newValue } } }
    public var provider: String? { get { shared.box.fields.provider } set { shared.update { $0.provider = newValue } } }
    public var modelRequested: String? { get { shared.box.fields.modelRequested } set { shared.update { $0.modelRequested = newValue } } }
    public var modelServed: String? { get { shared.box.fields.modelServed } set { shared.update { $0.modelServed = newValue } } }
    public var stream: Bool { get { shared.box.fields.stream } set { shared.update { $0.stream = newValue } } }
    /// HTTP status returned to the client.
    public var status: Int { get { shared.box.fields.status } set { shared.update { $0.status = newValue } } }
    public var outcome: Outcome { get { shared.box.fields.outcome } set { shared.update { $0.outcome = newValue } } }
    public var usage: Usage { get { shared.box.fields.usage } set { shared.update { $0.usage = newValue } } }
    public var usageSource: UsageSource { get { shared.box.fields.usageSource } set { shared.update { $0.usageSource = newValue } } }
    public var cost: Money { get { shared.box.fields.cost } set { shared.update { $0.cost = newValue } } }
    /// The per-token prices the cost was computed with, stored in the row so that a later price
    /// change never rewrites history. Only the prices and the id are stored: `source` reads back empty.
    public var price: ModelPrice? { get { shared.box.fields.price } set { shared.update { $0.price = newValue } } }
    public var ttftMicros: Int64? { get { shared.box.fields.ttftMicros } set { shared.update { $0.ttftMicros = newValue } } }
    public var upstreamMicros: Int64? { get { shared.box.fields.upstreamMicros } set { shared.update { $0.upstreamMicros = newValue } } }
    public var errorMessage: String? { get { shared.box.fields.errorMessage } set { shared.update { $0.errorMessage = newValue } } }
    /// The payer's plan when the call was admitted (nil before plans, or when refused earlier).
    public var plan: String? { get { shared.box.fields.plan } set { shared.update { $0.plan = newValue } } }
    /// The output cap the client asked for, and the one sent upstream after clamping/injection.
    public var outputCapRequested: Int? { get { shared.box.fields.outputCapRequested } set { shared.update { $0.outputCapRequested = newValue } } }
    public var outputCapApplied: Int? { get { shared.box.fields.outputCapApplied } set { shared.update { $0.outputCapApplied = newValue } } }
    /// `RequestFingerprint` of the request body as the client sent it: equal bodies from the same
    /// user within a short time are retries or regenerations. Nil for calls refused before the body was read.
    public var requestHash: Int64? { get { shared.box.fields.requestHash } set { shared.update { $0.requestHash = newValue } } }

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
        shared = SharedFields(Fields(
            id: id,
            requestId: requestId,
            startedAt: startedAt,
            firstByteAt: firstByteAt,
            endedAt: endedAt,
            keyId: keyId,
            user: user,
            team: team,
            dialect: dialect,
            route: route,
            provider: provider,
            modelRequested: modelRequested,
            modelServed: modelServed,
            stream: stream,
            status: status,
            outcome: outcome,
            usage: usage,
            usageSource: usageSource,
            cost: cost,
            price: price,
            ttftMicros: ttftMicros,
            upstreamMicros: upstreamMicros,
            errorMessage: errorMessage,
            plan: plan,
            outputCapRequested: outputCapRequested,
            outputCapApplied: outputCapApplied,
            requestHash: requestHash))
    }

    private struct Fields: Sendable, Hashable {
        var id: String
        var requestId: String
        var startedAt: Int64
        var firstByteAt: Int64?
        var endedAt: Int64
        var keyId: String?
        var user: String?
        var team: String?
        var dialect: Dialect
        var route: String
        var provider: String?
        var modelRequested: String?
        var modelServed: String?
        var stream: Bool
        var status: Int
        var outcome: Outcome
        var usage: Usage
        var usageSource: UsageSource
        var cost: Money
        var price: ModelPrice?
        var ttftMicros: Int64?
        var upstreamMicros: Int64?
        var errorMessage: String?
        var plan: String?
        var outputCapRequested: Int?
        var outputCapApplied: Int?
        var requestHash: Int64?
    }
}

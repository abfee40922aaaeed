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
/// A value type whose fields sit in one shared box until a copy changes one (copy on write): a
/// row passes through several hands on the event loop (settled, recorded, journaled, queued for
/// the writer), and copying its two dozen fields, a dozen of them strings, at each hand-off took
/// about 5 % of the event loop's CPU per call (`bench/profile.sh`: value copies and retains).
public struct LedgerEntry: Sendable, Hashable {
    /// A request id the gateway made is this and the row's `id`: the ledger finds it through the
    /// index of `id` and indexes only the ids clients sent (`Schema` v7).
    public static let madeRequestIDPrefix = "req_"

    private var box: Box

    /// Unique id of the call (primary key of the row).
    public var id: String { get { box.fields.id } set { unshared.id = newValue } }
    /// The `x-request-id` the client sent or was given, for correlation with logs. One the
    /// gateway made is `madeRequestIDPrefix` and `id`.
    public var requestId: String { get { box.fields.requestId } set { unshared.requestId = newValue } }
    public var startedAt: Int64 { get { box.fields.startedAt } set { unshared.startedAt = newValue } }
    public var firstByteAt: Int64? { get { box.fields.firstByteAt } set { unshared.firstByteAt = newValue } }
    public var endedAt: Int64 { get { box.fields.endedAt } set { unshared.endedAt = newValue } }
    public var keyId: String? { get { box.fields.keyId } set { unshared.keyId = newValue } }
    public var user: String? { get { box.fields.user } set { unshared.user = newValue } }
    public var team: String? { get { box.fields.team } set { unshared.team = newValue } }
    public var dialect: Dialect { get { box.fields.dialect } set { unshared.dialect = newValue } }
    /// The operation, e.g. `chat.completions` (an `Endpoint` raw value, or another route name).
    public var route: String { get { box.fields.route } set { unshared.route = newValue } }
    public var provider: String? { get { box.fields.provider } set { unshared.provider = newValue } }
    public var modelRequested: String? { get { box.fields.modelRequested } set { unshared.modelRequested = newValue } }
    public var modelServed: String? { get { box.fields.modelServed } set { unshared.modelServed = newValue } }
    public var stream: Bool { get { box.fields.stream } set { unshared.stream = newValue } }
    /// HTTP status returned to the client.
    public var status: Int { get { box.fields.status } set { unshared.status = newValue } }
    public var outcome: Outcome { get { box.fields.outcome } set { unshared.outcome = newValue } }
    public var usage: Usage { get { box.fields.usage } set { unshared.usage = newValue } }
    public var usageSource: UsageSource { get { box.fields.usageSource } set { unshared.usageSource = newValue } }
    public var cost: Money { get { box.fields.cost } set { unshared.cost = newValue } }
    /// The per-token prices the cost was computed with, stored in the row so that a later price
    /// change never rewrites history. Only the prices and the id are stored: `source` reads back empty.
    public var price: ModelPrice? { get { box.fields.price } set { unshared.price = newValue } }
    public var ttftMicros: Int64? { get { box.fields.ttftMicros } set { unshared.ttftMicros = newValue } }
    public var upstreamMicros: Int64? { get { box.fields.upstreamMicros } set { unshared.upstreamMicros = newValue } }
    public var errorMessage: String? { get { box.fields.errorMessage } set { unshared.errorMessage = newValue } }
    /// The payer's plan when the call was admitted (nil before plans, or when refused earlier).
    public var plan: String? { get { box.fields.plan } set { unshared.plan = newValue } }
    /// The output cap the client asked for, and the one sent upstream after clamping/injection.
    public var outputCapRequested: Int? { get { box.fields.outputCapRequested } set { unshared.outputCapRequested = newValue } }
    public var outputCapApplied: Int? { get { box.fields.outputCapApplied } set { unshared.outputCapApplied = newValue } }
    /// `RequestFingerprint` of the request body as the client sent it: equal bodies from the same
    /// user within a short time are retries or regenerations. Nil for calls refused before the body was read.
    public var requestHash: Int64? { get { box.fields.requestHash } set { unshared.requestHash = newValue } }

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
        box = Box(Fields(
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

    public static func == (lhs: LedgerEntry, rhs: LedgerEntry) -> Bool {
        lhs.box === rhs.box || lhs.box.fields == rhs.box.fields
    }

    public func hash(into hasher: inout Hasher) { box.fields.hash(into: &hasher) }

    /// The fields to change, first copied into a box of their own if another entry shares it.
    private var unshared: Fields {
        get { box.fields }
        _modify {
            if !isKnownUniquelyReferenced(&box) { box = Box(box.fields) }
            yield &box.fields
        }
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

    private final class Box: @unchecked Sendable {
        /// Changed only through `unshared`, once no other entry holds the box: no two accesses
        /// can overlap, so the runtime's exclusivity check (a cost on every read) is left out.
        @exclusivity(unchecked)
        var fields: Fields

        init(_ fields: Fields) { self.fields = fields }
    }
}

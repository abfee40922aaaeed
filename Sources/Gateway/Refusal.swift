import Ledger
import Metering
import NIOCore
import Policy

/// Why the gateway answers a call itself instead of the provider; carries what the client is told
/// and what the ledger records.
public struct Refusal: Error, Sendable {
    public enum Kind: Sendable, Equatable {
        case unauthenticated, badRequest, tooLarge, notFound, unknownModel, unpriced, forbidden
        case providerKeyMissing, upstreamUnreachable, upstreamTimeout, methodNotAllowed
        /// A valid key used where its role does not reach: an admin key on a model route, or a
        /// caller key on an admin route.
        case wrongKeyRole
        /// An admin API change this gateway or this route does not allow (`admin_api`; admin
        /// keys are made and revoked on the host only).
        case notPermitted
        /// The provider refused the gateway's own key: the caller is not at fault.
        case providerAuthFailed
        /// The provider's error answer was not JSON (a load balancer's or CDN's HTML page, a
        /// plain-text 404): answered with its status, as a JSON error the SDKs can read.
        case providerErrorPage(status: Int)
        /// The gateway stopped while the call was in flight.
        case shuttingDown
        /// The provider's concurrency limit is reached and its wait queue is full or timed out.
        case providerBusy
        /// The client did not send its whole body in time (`body_timeout_ms`).
        case requestTimeout
        /// Too many request headers, or too large.
        case headersTooLarge
        /// An `Idempotency-Key` reused with another body, or whose answer was not kept.
        case idempotencyConflict
        /// The ledger cannot commit: fail closed (`LedgerHealth`).
        case ledgerUnavailable
        /// The budgets shared with other replicas (PostgreSQL) cannot be reached: fail closed,
        /// as no call may go out unbudgeted.
        case quotaStateUnavailable
        // Plans: what the payer may do.
        case tooManyConcurrent, rateLimited(RateDimension), outputOverCap, quotaExhausted, spendRateTripped
    }

    public var kind: Kind
    public var message: String
    /// The request field the message is about, when there is one (OpenAI's `param`).
    public var field: String?
    /// Extra response headers: `retry-after`, `x-ratelimit-*`, `x-should-retry`.
    public var headers: [(String, String)]

    public init(_ kind: Kind, _ message: String, field: String? = nil, headers: [(String, String)] = []) {
        self.kind = kind
        self.message = message
        self.field = field
        self.headers = headers
        // The official SDKs retry 408, 409, 429 and 5xx unless told not to: a refusal that the
        // same request meets again (no budget left, a key reused with another body, the
        // gateway's own provider key missing or refused) says so, instead of costing retries.
        if neverPassesOnRetry || waitsLongerThanSDKsDo { self.headers.append(("x-should-retry", "false")) }
    }

    /// Its `retry-after` is past what the SDKs wait for (a minute): they would retry at once on
    /// their own backoff and meet the same refusal (the spend-rate breaker, a rate limit in debt).
    private var waitsLongerThanSDKsDo: Bool {
        guard let value = headers.first(where: { $0.0 == "retry-after" })?.1, let seconds = Int(value) else { return false }
        return seconds > 60
    }

    private var neverPassesOnRetry: Bool {
        switch kind {
        case .quotaExhausted, .idempotencyConflict, .providerKeyMissing, .providerAuthFailed: return true
        default: return false
        }
    }

    public var status: Int {
        switch kind {
        case .unauthenticated: return 401
        case .badRequest, .unpriced, .outputOverCap: return 400
        case .tooManyConcurrent, .rateLimited, .quotaExhausted, .spendRateTripped: return 429
        case .tooLarge: return 413
        case .requestTimeout: return 408
        case .idempotencyConflict: return 409
        case .headersTooLarge: return 431
        case .notFound, .unknownModel: return 404
        case .methodNotAllowed: return 405
        case .shuttingDown, .providerBusy, .ledgerUnavailable, .quotaStateUnavailable: return 503
        case .forbidden, .wrongKeyRole, .notPermitted: return 403
        case .providerKeyMissing, .upstreamUnreachable, .providerAuthFailed: return 502
        case .upstreamTimeout: return 504
        case .providerErrorPage(let status): return status
        }
    }

    public var outcome: Outcome {
        switch kind {
        case .unauthenticated, .wrongKeyRole, .notPermitted: return .refusedAuth
        case .badRequest, .requestTimeout, .idempotencyConflict: return .refusedBadRequest
        case .headersTooLarge: return .refusedTooLarge
        case .tooLarge: return .refusedTooLarge
        case .notFound, .methodNotAllowed: return .refusedNotFound
        case .providerAuthFailed, .providerErrorPage: return .upstreamError
        case .shuttingDown: return .interrupted
        case .ledgerUnavailable: return .interrupted
        case .quotaStateUnavailable: return .refusedUnavailable
        case .unknownModel: return .refusedUnknownModel
        case .unpriced: return .refusedUnpriced
        case .forbidden: return .refusedModel
        case .tooManyConcurrent: return .refusedConcurrency
        case .rateLimited: return .refusedRate
        case .outputOverCap: return .refusedCap
        case .quotaExhausted: return .refusedQuota
        case .spendRateTripped: return .refusedBreaker
        case .providerKeyMissing, .upstreamUnreachable: return .upstreamUnreachable
        case .upstreamTimeout: return .timeout
        case .providerBusy: return .refusedProviderBusy
        }
    }

    /// The error body in the caller's dialect, shaped as the official SDKs expect.
    public func body(in dialect: Dialect) -> String {
        switch dialect {
        case .openai:
            let param = field.map(JSONString.literal) ?? "null"
            return #"{"error":{"message":\#(JSONString.literal(message)),"type":"\#(openAIType)","param":\#(param),"code":"\#(openAICode)"}}"#
        case .anthropic:
            return #"{"type":"error","error":{"type":"\#(anthropicType)","message":\#(JSONString.literal(message))}}"#
        }
    }

    private var openAIType: String {
        switch kind {
        case .tooManyConcurrent, .rateLimited(.requests), .spendRateTripped: return "requests"
        case .rateLimited(.tokens): return "tokens"
        case .quotaExhausted: return "insufficient_quota"
        case .unauthenticated, .badRequest, .tooLarge, .notFound, .methodNotAllowed, .unknownModel, .unpriced,
             .outputOverCap, .requestTimeout, .headersTooLarge, .idempotencyConflict:
            return "invalid_request_error"
        case .forbidden, .wrongKeyRole, .notPermitted: return "permission_error"
        case .providerKeyMissing, .upstreamUnreachable, .upstreamTimeout, .providerAuthFailed, .shuttingDown,
             .providerBusy, .ledgerUnavailable, .quotaStateUnavailable, .providerErrorPage:
            return "api_error"
        }
    }

    private var openAICode: String {
        switch kind {
        case .tooManyConcurrent, .rateLimited, .spendRateTripped: return "rate_limit_exceeded"
        case .quotaExhausted: return "insufficient_quota"
        case .outputOverCap: return "output_over_cap"
        case .unauthenticated: return "invalid_api_key"
        case .badRequest: return "invalid_request"
        case .tooLarge: return "request_too_large"
        case .requestTimeout: return "request_timeout"
        case .idempotencyConflict: return "idempotency_conflict"
        case .headersTooLarge: return "request_headers_too_large"
        case .notFound: return "not_found"
        case .methodNotAllowed: return "method_not_allowed"
        case .providerAuthFailed: return "provider_auth_failed"
        case .providerErrorPage: return "upstream_error"
        case .shuttingDown: return "gateway_shutting_down"
        case .unknownModel: return "model_not_found"
        case .unpriced: return "model_not_priced"
        case .forbidden: return "model_not_allowed"
        case .wrongKeyRole: return "wrong_key_role"
        case .notPermitted: return "not_permitted"
        case .providerKeyMissing: return "provider_key_missing"
        case .upstreamUnreachable: return "upstream_unreachable"
        case .upstreamTimeout: return "upstream_timeout"
        case .providerBusy: return "provider_busy"
        case .ledgerUnavailable: return "ledger_unavailable"
        case .quotaStateUnavailable: return "quota_state_unavailable"
        }
    }

    private var anthropicType: String {
        switch kind {
        case .tooManyConcurrent, .rateLimited, .spendRateTripped: return "rate_limit_error"
        // Anthropic's own name for "no money left"; still status 429 so SDKs raise RateLimitError,
        // and `x-should-retry: false` stops their retries.
        case .quotaExhausted: return "billing_error"
        case .outputOverCap: return "invalid_request_error"
        case .unauthenticated: return "authentication_error"
        case .badRequest, .unpriced, .methodNotAllowed, .requestTimeout, .idempotencyConflict: return "invalid_request_error"
        case .tooLarge, .headersTooLarge: return "request_too_large"
        case .notFound, .unknownModel: return "not_found_error"
        case .forbidden, .wrongKeyRole, .notPermitted: return "permission_error"
        case .providerKeyMissing, .upstreamUnreachable, .providerAuthFailed: return "api_error"
        case .upstreamTimeout: return "timeout_error"
        case .shuttingDown, .providerBusy, .ledgerUnavailable, .quotaStateUnavailable: return "overloaded_error"
        case .providerErrorPage(let status): return Self.anthropicType(forStatus: status)
        }
    }

    /// Anthropic's error type for a status (its errors page), so the SDKs' handling matches.
    private static func anthropicType(forStatus status: Int) -> String {
        switch status {
        case 400, 422: return "invalid_request_error"
        case 401: return "authentication_error"
        case 403: return "permission_error"
        case 404: return "not_found_error"
        case 413: return "request_too_large"
        case 429: return "rate_limit_error"
        case 503, 529: return "overloaded_error"
        case 504: return "timeout_error"
        default: return "api_error"
        }
    }
}

import Ledger
import Metering
import NIOCore

/// Why the gateway answers a call itself instead of the provider; carries what the client is told
/// and what the ledger records.
public struct Refusal: Error, Sendable {
    public enum Kind: Sendable {
        case unauthenticated, badRequest, tooLarge, notFound, unknownModel, unpriced, forbidden
        case providerKeyMissing, upstreamUnreachable, upstreamTimeout
    }

    public var kind: Kind
    public var message: String
    /// The request field the message is about, when there is one (OpenAI's `param`).
    public var field: String?

    public init(_ kind: Kind, _ message: String, field: String? = nil) {
        self.kind = kind
        self.message = message
        self.field = field
    }

    public var status: Int {
        switch kind {
        case .unauthenticated: return 401
        case .badRequest, .unpriced: return 400
        case .tooLarge: return 413
        case .notFound, .unknownModel: return 404
        case .forbidden: return 403
        case .providerKeyMissing, .upstreamUnreachable: return 502
        case .upstreamTimeout: return 504
        }
    }

    public var outcome: Outcome {
        switch kind {
        case .unauthenticated: return .refusedAuth
        case .badRequest: return .refusedBadRequest
        case .tooLarge: return .refusedTooLarge
        case .notFound: return .refusedNotFound
        case .unknownModel: return .refusedUnknownModel
        case .unpriced: return .refusedUnpriced
        case .forbidden: return .refusedModel
        case .providerKeyMissing, .upstreamUnreachable: return .upstreamUnreachable
        case .upstreamTimeout: return .timeout
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
        case .unauthenticated: return "invalid_request_error"
        case .badRequest, .tooLarge, .notFound, .unknownModel, .unpriced: return "invalid_request_error"
        case .forbidden: return "permission_error"
        case .providerKeyMissing, .upstreamUnreachable, .upstreamTimeout: return "api_error"
        }
    }

    private var openAICode: String {
        switch kind {
        case .unauthenticated: return "invalid_api_key"
        case .badRequest: return "invalid_request"
        case .tooLarge: return "request_too_large"
        case .notFound: return "not_found"
        case .unknownModel: return "model_not_found"
        case .unpriced: return "model_not_priced"
        case .forbidden: return "model_not_allowed"
        case .providerKeyMissing: return "provider_key_missing"
        case .upstreamUnreachable: return "upstream_unreachable"
        case .upstreamTimeout: return "upstream_timeout"
        }
    }

    private var anthropicType: String {
        switch kind {
        case .unauthenticated: return "authentication_error"
        case .badRequest, .unpriced: return "invalid_request_error"
        case .tooLarge: return "request_too_large"
        case .notFound, .unknownModel: return "not_found_error"
        case .forbidden: return "permission_error"
        case .providerKeyMissing, .upstreamUnreachable, .upstreamTimeout: return "api_error"
        }
    }
}

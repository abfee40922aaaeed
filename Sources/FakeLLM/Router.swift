import Foundation
import NIOCore
import NIOHTTP1

/// Turns one request into a `ReplyPlan`: route, key check, failure knobs, body peek, answer.
enum Router {
    struct Decision {
        var plan: ReplyPlan
        var route: FakeRoute?
    }

    static func route(method: HTTPMethod, path: Substring) -> FakeRoute? {
        switch (method, path) {
        case (.POST, "/v1/chat/completions"): .chatCompletions
        case (.POST, "/v1/completions"): .completions
        case (.POST, "/v1/embeddings"): .embeddings
        case (.POST, "/v1/responses"): .responses
        case (.GET, "/v1/models"): .models
        case (.POST, "/v1/messages"): .messages
        case (.POST, "/v1/messages/count_tokens"): .countTokens
        default: nil
        }
    }

    static func decide(method: HTTPMethod, uri: String, knobs: RequestKnobs, body: ByteBuffer,
                       configuration: FakeLLMConfiguration, serial: Int, requestID: String) -> Decision {
        let path = uri.firstIndex(of: "?").map { uri[..<$0] } ?? Substring(uri)
        if method == .GET, path == "/health" {
            return Decision(plan: .body(contentType: "text/plain", "ok\n"))
        }
        let route = route(method: method, path: path)
        let dialect: FakeDialect = switch route {
        case .some(.models): knobs.hasAnthropicVersion ? .anthropic : .openAI
        case .some(let known): known.dialect
        case .none: path.hasPrefix("/v1/messages") || knobs.hasAnthropicVersion ? .anthropic : .openAI
        }
        var plan = answer(method: method, path: path, route: route, dialect: dialect, knobs: knobs, body: body,
                          configuration: configuration, serial: serial, requestID: requestID)
        if plan.ending != .resetBeforeHeaders {
            plan.headers.add(name: dialect == .openAI ? "x-request-id" : "request-id", value: requestID)
            if knobs.headerBytes > 0 { plan.headers.add(name: "x-fake-padding", value: String(repeating: "p", count: knobs.headerBytes)) }
        }
        return Decision(plan: plan, route: route)
    }

    private static func answer(method: HTTPMethod, path: Substring, route: FakeRoute?, dialect: FakeDialect,
                               knobs: RequestKnobs, body: ByteBuffer, configuration: FakeLLMConfiguration,
                               serial: Int, requestID: String) -> ReplyPlan {
        if let key = configuration.requiredAPIKey {
            // Anthropic takes `x-api-key`, and also `Authorization: Bearer` (which recent
            // anthropic SDKs send for an API key).
            let bearer = knobs.authorization == "Bearer " + key
            let accepted = dialect == .openAI ? bearer : (knobs.apiKey == key || bearer)
            guard accepted else {
                let presented = dialect == .openAI ? knobs.authorization : (knobs.apiKey ?? knobs.authorization)
                return ErrorReplies.unauthorized(dialect, presented: presented, requestID: requestID)
            }
        }
        if method == .GET, path.hasPrefix("/v1/models/"), dialect == .openAI {
            let id = String(path.dropFirst("/v1/models/".count))
            guard OpenAIReplies.modelIDs.contains(id) else {
                return ErrorReplies.plan(.openAI, status: 404,
                                         message: "The model `\(id)` does not exist or you do not have access to it.",
                                         openAICode: "model_not_found", param: "model", requestID: requestID)
            }
            return .body(OpenAIReplies.model(id: id))
        }
        guard let route else {
            let message = dialect == .openAI ? "Invalid URL (\(method.rawValue) \(path))" : "Not Found"
            return ErrorReplies.plan(dialect, status: 404, message: message, requestID: requestID)
        }
        if let invalid = knobs.invalid {
            return ErrorReplies.plan(dialect, status: 400, message: invalid, requestID: requestID)
        }
        switch knobs.failure {
        case .resetBeforeHeaders: return .reset()
        case .http500: return ErrorReplies.plan(dialect, status: 500, requestID: requestID)
        case .http429: return ErrorReplies.plan(dialect, status: 429, requestID: requestID)
        case .http400:
            return ErrorReplies.plan(dialect, status: 400, message: "Fake invalid request (x-fake-fail: http-400)",
                                     requestID: requestID)
        case .html502: return ErrorReplies.html502()
        case .echoCredential400:
            // Plain, as JSON escapes (`\u0073…`) and in a response header, as echoes come.
            let echoed = CredentialEcho(knobs: knobs, dialect: dialect)
            let plan = ErrorReplies.plan(dialect, status: 400, message: echoed.message(CredentialEcho.placeholder),
                                         requestID: requestID)
            var echo = ReplyPlan.body(status: plan.status, echoed.filled(String(buffer: plan.pieces[0].bytes)))
            if let credential = echoed.credential { echo.headers.add(name: "x-echo-authorization", value: credential) }
            echo.splitBody(into: 3)
            return echo
        case .nonJSON200: return ErrorReplies.nonJSON200()
        case .cutMidStream, .errorMidStream, .echoCredentialMidStream, .noDoneMarker, .dropConnectionOnce, .goAwayOnce, .http11RequiredAfterHead,
             .refuseStreamOptions, .none: break  // drops: see FakeHTTPHandler.begin; the rest below
        }
        if let status = knobs.status, status >= 400 {
            return ErrorReplies.plan(dialect, status: status, requestID: requestID)
        }

        var plan: ReplyPlan
        if route == .models {
            plan = .body(dialect == .openAI ? OpenAIReplies.modelList : AnthropicReplies.modelList)
        } else {
            let peek = body.withUnsafeReadableBytes { RequestPeek($0) }
            guard peek.isJSONObject else {
                let message = dialect == .openAI
                    ? "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload."
                    : "There was an issue with the formatting or content of your request body: invalid JSON."
                return ErrorReplies.plan(dialect, status: 400, message: message, requestID: requestID)
            }
            if knobs.failure == .refuseStreamOptions, peek.hasStreamOptions {
                return ErrorReplies.plan(dialect, status: 400, message: "Unknown parameter: 'stream_options'.",
                                         openAICode: "unknown_parameter", param: "stream_options", requestID: requestID)
            }
            guard let model = peek.model else {
                let message = dialect == .openAI ? "you must provide a model parameter" : "model: Field required"
                return ErrorReplies.plan(dialect, status: 400, message: message, param: "model", requestID: requestID)
            }
            let context = ReplyContext(
                route: route, peek: peek,
                usage: FakeUsage.expected(route: route, requestBodyBytes: body.readableBytes, knobs: knobs, peek: peek),
                model: jsonEscaped(model), serial: serial, created: Int(Date().timeIntervalSince1970),
                chunkGap: knobs.chunkGap, inferenceGeo: peek.inferenceGeo ?? knobs.inferenceGeo)
            plan = switch route {
            case .chatCompletions: OpenAIReplies.chat(context)
            case .completions: OpenAIReplies.completion(context)
            case .embeddings: OpenAIReplies.embeddings(context)
            case .responses: ResponsesReplies.reply(context)
            case .messages: AnthropicReplies.message(context)
            case .countTokens: AnthropicReplies.countTokens(context)
            case .models: preconditionFailure("answered above")
            }
        }
        if knobs.failure == .cutMidStream { plan.cutHalfway() }
        if knobs.failure == .errorMidStream, route == .messages, plan.headFirst {
            plan.endHalfway(with: .sseEvent("error", #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#))
        }
        if knobs.failure == .echoCredentialMidStream, plan.headFirst {
            plan.endHalfway(with: CredentialEcho(knobs: knobs, dialect: dialect).errorEvent(route: route), splitInto: 3)
            // Its length announced, as a buffering proxy before the provider would.
            plan.headers.replaceOrAdd(name: "content-length", value: "\(plan.pieces.reduce(0) { $0 + $1.bytes.readableBytes })")
        }
        if knobs.failure == .noDoneMarker, route == .chatCompletions || route == .completions,
           plan.pieces.last.map({ $0.bytes == OpenAIReplies.done.bytes }) == true {
            plan.pieces.removeLast()
        }
        if knobs.failure == .http11RequiredAfterHead { plan.ending = .http11RequiredAfter(min(1, plan.pieces.count)) }
        return plan
    }
}

/// The credential a request carried, quoted back as a careless upstream would: as written and
/// as JSON escapes (`\u0073…`).
struct CredentialEcho {
    static let placeholder = "ESCAPED"
    let credential: String?

    init(knobs: RequestKnobs, dialect: FakeDialect) {
        credential = dialect == .openAI ? knobs.authorization : (knobs.apiKey ?? knobs.authorization)
    }

    /// The message, with `escaped` where the escaped copy goes (a JSON writer would escape the
    /// backslashes: the caller puts the copy in after writing).
    func message(_ escaped: String) -> String {
        "Bad request from a client with credentials \(credential ?? "none") (escaped: \(escaped))"
    }

    func filled(_ json: String) -> String {
        let escaped = (credential ?? "none").unicodeScalars.map { "\\u" + hex4($0.value) }.joined()
        return json.replacingOccurrences(of: Self.placeholder, with: escaped)
    }

    /// The stream's error event for `route`, in its provider's shape.
    func errorEvent(route: FakeRoute) -> ByteBuffer {
        let message = jsonEscaped(message(Self.placeholder))
        switch route {
        case .responses:
            return .sseEvent("error", filled(#"{"type":"error","code":"server_error","message":"\#(message)","param":null,"sequence_number":99}"#))
        case .messages, .countTokens:
            return .sseEvent("error", filled(#"{"type":"error","error":{"type":"api_error","message":"\#(message)"}}"#))
        case .chatCompletions, .completions, .embeddings, .models:
            return .sseData(filled(#"{"error":{"message":"\#(message)","type":"server_error","param":null,"code":null}}"#))
        }
    }

    /// Four lower-case hex digits (a JSON `\u` escape's).
    private func hex4(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}

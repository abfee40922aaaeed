import NIOHTTP1

/// Error answers in each provider's real shape, plus the non-provider failures (an HTML page
/// from a proxy in between, a 200 that is not JSON).
///
/// OpenAI: `{"error":{"message":…,"type":…,"param":…,"code":…}}`.
/// Anthropic: `{"type":"error","error":{"type":…,"message":…},"request_id":…}`.
enum ErrorReplies {
    static func plan(_ dialect: FakeDialect, status code: Int, message: String? = nil,
                     openAICode: String? = nil, param: String? = nil, requestID: String) -> ReplyPlan {
        // NIO has no reason phrase for Anthropic's 529.
        let status = code == 529 ? HTTPResponseStatus(statusCode: 529, reasonPhrase: "Overloaded")
            : HTTPResponseStatus(statusCode: code)
        let text = message ?? defaultMessage(dialect, code)
        var plan: ReplyPlan
        switch dialect {
        case .openAI:
            let errorCode = openAICode ?? defaultOpenAICode(code)
            plan = .body(status: status, """
                {"error":{"message":"\(jsonEscaped(text))","type":"\(openAIType(code))",\
                "param":\(jsonStringOrNull(param)),"code":\(jsonStringOrNull(errorCode))}}
                """)
        case .anthropic:
            plan = .body(status: status, """
                {"type":"error","error":{"type":"\(anthropicType(code))",\
                "message":"\(jsonEscaped(text))"},"request_id":"\(jsonEscaped(requestID))"}
                """)
        }
        if code == 429 {
            plan.headers.add(name: "retry-after", value: "1")
            switch dialect {
            case .openAI:
                plan.headers.add(name: "x-ratelimit-remaining-requests", value: "0")
                plan.headers.add(name: "x-ratelimit-reset-requests", value: "1s")
            case .anthropic:
                plan.headers.add(name: "anthropic-ratelimit-requests-remaining", value: "0")
            }
        }
        return plan
    }

    /// The 401 each provider sends for a missing or wrong key.
    static func unauthorized(_ dialect: FakeDialect, presented: String?, requestID: String) -> ReplyPlan {
        switch dialect {
        case .openAI:
            guard let presented, !presented.isEmpty else {
                return plan(.openAI, status: 401, message: "You didn't provide an API key. You need to provide "
                    + "your API key in an Authorization header using Bearer auth "
                    + "(i.e. Authorization: Bearer YOUR_KEY).", requestID: requestID)
            }
            return plan(.openAI, status: 401, message: "Incorrect API key provided: \(redacted(presented)).",
                        openAICode: "invalid_api_key", requestID: requestID)
        case .anthropic:
            let message = presented == nil ? "x-api-key header is required" : "invalid x-api-key"
            return plan(.anthropic, status: 401, message: message, requestID: requestID)
        }
    }

    /// What nginx in front of a dead upstream answers.
    static func html502() -> ReplyPlan {
        .body(status: .badGateway, contentType: "text/html", """
            <html>\r
            <head><title>502 Bad Gateway</title></head>\r
            <body>\r
            <center><h1>502 Bad Gateway</h1></center>\r
            <hr><center>nginx</center>\r
            </body>\r
            </html>\r

            """)
    }

    /// A 200 that claims JSON but is not.
    static func nonJSON200() -> ReplyPlan {
        .body(status: .ok, "upstream says hi, but this is not JSON {\n")
    }

    private static func defaultMessage(_ dialect: FakeDialect, _ code: Int) -> String {
        switch (dialect, code) {
        case (.openAI, 429):
            "Rate limit reached for requests per min (RPM): Limit 1, Used 1, Requested 1. Please try again in 1s."
        case (.anthropic, 429): "Number of requests has exceeded your per-minute rate limit"
        case (.openAI, 500...): "The server had an error while processing your request. Sorry about that!"
        case (.anthropic, 529): "Overloaded"
        case (.anthropic, 500...): "Internal server error"
        case (_, 404): "Not found"
        default: "Fake error \(code) from FakeLLM"
        }
    }

    private static func openAIType(_ code: Int) -> String {
        switch code {
        case 429: "requests"
        case 500...: "server_error"
        default: "invalid_request_error"
        }
    }

    private static func defaultOpenAICode(_ code: Int) -> String? {
        code == 429 ? "rate_limit_exceeded" : nil
    }

    private static func anthropicType(_ code: Int) -> String {
        switch code {
        case 401: "authentication_error"
        case 402: "billing_error"
        case 403: "permission_error"
        case 404: "not_found_error"
        case 413: "request_too_large"
        case 429: "rate_limit_error"
        case 504: "timeout_error"
        case 529: "overloaded_error"
        case 500...: "api_error"
        default: "invalid_request_error"
        }
    }

    /// Keys are shown like OpenAI does: first and last few characters only.
    private static func redacted(_ key: String) -> String {
        let bare = key.hasPrefix("Bearer ") ? String(key.dropFirst(7)) : key
        guard bare.count > 8 else { return "****" }
        return "\(bare.prefix(3))****\(bare.suffix(4))"
    }
}

func jsonStringOrNull(_ value: String?) -> String {
    value.map { "\"\(jsonEscaped($0))\"" } ?? "null"
}

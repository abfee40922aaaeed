import NIOCore

/// Anthropic messages (plain and streamed), count_tokens and the models list.
///
/// A stream is the real event sequence, each as `event: <type>\ndata: <json>\n\n`:
/// `message_start` (input usage, `output_tokens` 1), for each web search a `server_tool_use`
/// block (its query as one `input_json_delta`) and a `web_search_tool_result` block of one
/// result, then the text's `content_block_start`, `ping`, one
/// `content_block_delta` per delta, `content_block_stop`, `message_delta` (stop reason and
/// the cumulative usage, without `inference_geo`, which only `message_start` reports),
/// `message_stop`.
enum AnthropicReplies {
    static func message(_ c: ReplyContext) -> ReplyPlan {
        let id = "msg_" + c.idSuffix
        let stopReason = c.usage.hitOutputCap ? "max_tokens" : "end_turn"
        guard c.peek.stream else {
            return .body("""
                {"id":"\(id)","type":"message","role":"assistant","model":"\(c.model)",\
                "content":[{"type":"text","text":"\(c.content)"}],"stop_reason":"\(stopReason)",\
                "stop_sequence":null,"usage":\(usage(c, outputTokens: c.usage.outputTokens))}
                """, delay: c.generationTime)
        }
        let n = c.usage.contentTokens
        var pieces: [ReplyPiece] = []
        pieces.reserveCapacity(n + 6)
        pieces.append(event("message_start", """
            {"type":"message_start","message":{"id":"\(id)","type":"message","role":"assistant",\
            "model":"\(c.model)","content":[],"stop_reason":null,"stop_sequence":null,\
            "usage":\(usage(c, outputTokens: min(1, c.usage.outputTokens), atStart: true))}}
            """))
        for search in 0..<c.usage.webSearches {
            pieces.append(contentsOf: webSearchBlocks(id: "srvtoolu_\(c.idSuffix)_\(search)", index: 2 * search))
        }
        let textIndex = 2 * c.usage.webSearches
        pieces.append(event("content_block_start", """
            {"type":"content_block_start","index":\(textIndex),"content_block":{"type":"text","text":""}}
            """))
        pieces.append(ping)
        for index in 0..<n {
            pieces.append(event("content_block_delta", """
                {"type":"content_block_delta","index":\(textIndex),"delta":{"type":"text_delta","text":"\(c.delta(index))"}}
                """, delay: c.chunkGap))
        }
        pieces.append(event("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":\(textIndex)}"))
        let u = c.usage
        pieces.append(event("message_delta", """
            {"type":"message_delta","delta":{"stop_reason":"\(stopReason)","stop_sequence":null},\
            "usage":{"input_tokens":\(u.uncachedInputTokens),"cache_creation_input_tokens":\(u.cacheWriteTokens),\
            "cache_read_input_tokens":\(u.cachedInputTokens),"output_tokens":\(u.outputTokens)\(extras(c))}}
            """))
        pieces.append(messageStop)
        return .eventStream(pieces)
    }

    static func countTokens(_ c: ReplyContext) -> ReplyPlan {
        .body("{\"input_tokens\":\(c.usage.uncachedInputTokens)}")
    }

    /// Message usage: `input_tokens` excludes cache reads and writes. At a stream's start no
    /// search has been made: the count comes with `message_delta`.
    private static func usage(_ c: ReplyContext, outputTokens: Int, atStart: Bool = false) -> String {
        let u = c.usage
        return """
        {"input_tokens":\(u.uncachedInputTokens),"cache_creation_input_tokens":\(u.cacheWriteTokens),\
        "cache_read_input_tokens":\(u.cachedInputTokens),"cache_creation":{"ephemeral_5m_input_tokens":\
        \(u.cacheWriteTokens - u.cacheWrite1hTokens),"ephemeral_1h_input_tokens":\(u.cacheWrite1hTokens)},\
        "output_tokens":\(outputTokens),\
        "service_tier":"standard"\(extras(c, searches: !atStart))\(c.inferenceGeo.map { ",\"inference_geo\":\"\(jsonEscaped($0))\"" } ?? "")}
        """
    }

    /// The usage fields only some calls carry: the searches a web search tool made, and the
    /// speed when the request named one (fast mode).
    private static func extras(_ c: ReplyContext, searches: Bool = true) -> String {
        (searches && c.usage.webSearches > 0 ? ",\"server_tool_use\":{\"web_search_requests\":\(c.usage.webSearches)}" : "")
            + (c.peek.speed.map { ",\"speed\":\"\(jsonEscaped($0))\"" } ?? "")
    }

    /// One web search in a stream: the `server_tool_use` block, then its result's block.
    private static func webSearchBlocks(id: String, index: Int) -> [ReplyPiece] {
        [
            event("content_block_start", """
                {"type":"content_block_start","index":\(index),"content_block":{"type":"server_tool_use","id":"\(id)",\
                "name":"web_search","input":{}}}
                """),
            event("content_block_delta", """
                {"type":"content_block_delta","index":\(index),"delta":{"type":"input_json_delta","partial_json":"{\\"query\\":\\"fake\\"}"}}
                """),
            event("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":\(index)}"),
            event("content_block_start", """
                {"type":"content_block_start","index":\(index + 1),"content_block":{"type":"web_search_tool_result",\
                "tool_use_id":"\(id)","content":[{"type":"web_search_result","title":"Fake result",\
                "url":"https://example.com/fake","encrypted_content":"ZmFrZQ==","page_age":null}]}}
                """),
            event("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":\(index + 1)}"),
        ]
    }

    private static func event(_ name: String, _ json: String, delay: Duration = .zero) -> ReplyPiece {
        ReplyPiece(bytes: .sseEvent(name, json), delay: delay)
    }

    // The real API writes its ping with a space after the colon.
    static let ping = ReplyPiece(bytes: .sseEvent("ping", "{\"type\": \"ping\"}"), delay: .zero)
    static let messageStop = ReplyPiece(bytes: .sseEvent("message_stop", "{\"type\":\"message_stop\"}"), delay: .zero)

    // MARK: models

    static let models: [(id: String, name: String, created: String)] = [
        ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
        ("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z"),
        ("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-24T00:00:00Z"),
        ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"),
    ]

    static let modelList: String = {
        let entries = models.map {
            "{\"type\":\"model\",\"id\":\"\($0.id)\",\"display_name\":\"\($0.name)\",\"created_at\":\"\($0.created)\"}"
        }
        return "{\"data\":[" + entries.joined(separator: ",") + "],\"has_more\":false,"
            + "\"first_id\":\"\(models.first!.id)\",\"last_id\":\"\(models.last!.id)\"}"
    }()
}

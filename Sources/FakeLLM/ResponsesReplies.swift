/// The OpenAI Responses API (`POST /v1/responses`), plain and streamed.
///
/// A stream is the real event sequence, each as `event: <type>\ndata: <json>\n\n` with a
/// rising `sequence_number` and no `[DONE]`: `response.created`, `response.in_progress`,
/// for each web or file search call its item (`response.output_item.added`,
/// `response.web_search_call.in_progress` / `.searching` / `.completed`, or the
/// `file_search_call` ones, `response.output_item.done`), then the message's
/// `response.output_item.added`, `response.content_part.added`, one
/// `response.output_text.delta` per delta, `response.output_text.done`,
/// `response.content_part.done`, `response.output_item.done`, then `response.completed`
/// (or `response.incomplete` when the output cap was hit). Only the final response object
/// carries `usage`.
enum ResponsesReplies {
    static func reply(_ c: ReplyContext) -> ReplyPlan {
        let ids = (response: "resp_" + c.idSuffix, message: "msg_" + c.idSuffix)
        let capped = c.usage.hitOutputCap
        let finalStatus = capped ? "incomplete" : "completed"
        let text = c.content
        let finalItem = message(ids.message, status: finalStatus, text: text)
        // The calls a web or file search tool made come first in the output, as the real API puts them.
        let searches = (0..<c.usage.webSearches).map { SearchItem.web(id: "ws_\(c.idSuffix)_\($0)") }
            + (0..<c.usage.fileSearches).map { SearchItem.file(id: "fs_\(c.idSuffix)_\($0)") }
        let finalResponse = response(c, id: ids.response, status: finalStatus,
                                     output: searches.map { $0.json(status: "completed") + "," }.joined() + finalItem,
                                     usage: usage(c.usage), capped: capped)
        guard c.peek.stream else {
            return .body(finalResponse, delay: c.generationTime)
        }

        var sequence = 0
        var pieces: [ReplyPiece] = []
        pieces.reserveCapacity(c.usage.contentTokens + 8)
        func emit(_ type: String, _ fields: String, delay: Duration = .zero) {
            let json = "{\"type\":\"\(type)\",\"sequence_number\":\(sequence),\(fields)}"
            pieces.append(ReplyPiece(bytes: .sseEvent(type, json), delay: delay))
            sequence += 1
        }
        let inProgress = response(c, id: ids.response, status: "in_progress", output: "", usage: "null", capped: false)
        let messageIndex = searches.count
        let part = (item: "\"item_id\":\"\(ids.message)\",\"output_index\":\(messageIndex)", content: "\"content_index\":0")
        emit("response.created", "\"response\":" + inProgress)
        emit("response.in_progress", "\"response\":" + inProgress)
        for (index, search) in searches.enumerated() {
            emit("response.output_item.added", "\"output_index\":\(index),\"item\":" + search.json(status: "in_progress"))
            for step in ["in_progress", "searching", "completed"] {
                emit("response.\(search.type).\(step)", "\"output_index\":\(index),\"item_id\":\"\(search.id)\"")
            }
            emit("response.output_item.done", "\"output_index\":\(index),\"item\":" + search.json(status: "completed"))
        }
        emit("response.output_item.added",
             "\"output_index\":\(messageIndex),\"item\":{\"id\":\"\(ids.message)\",\"type\":\"message\",\"status\":\"in_progress\","
                + "\"content\":[],\"role\":\"assistant\"}")
        emit("response.content_part.added", "\(part.item),\(part.content),\"part\":" + outputText(""))
        for index in 0..<c.usage.contentTokens {
            emit("response.output_text.delta",
                 "\(part.item),\(part.content),\"delta\":\"\(c.delta(index))\",\"logprobs\":[]", delay: c.chunkGap)
        }
        emit("response.output_text.done", "\(part.item),\(part.content),\"text\":\"\(text)\",\"logprobs\":[]")
        emit("response.content_part.done", "\(part.item),\(part.content),\"part\":" + outputText(text))
        emit("response.output_item.done", "\"output_index\":\(messageIndex),\"item\":" + finalItem)
        emit(capped ? "response.incomplete" : "response.completed", "\"response\":" + finalResponse)
        return .eventStream(pieces)
    }

    /// One call of a web or file search tool, as an output item.
    private struct SearchItem {
        let type: String
        let id: String
        let details: String

        static func web(id: String) -> SearchItem {
            SearchItem(type: "web_search_call", id: id, details: "\"action\":{\"type\":\"search\",\"query\":\"fake\"}")
        }

        static func file(id: String) -> SearchItem {
            SearchItem(type: "file_search_call", id: id, details: "\"queries\":[\"fake\"],\"results\":null")
        }

        func json(status: String) -> String {
            "{\"type\":\"\(type)\",\"id\":\"\(id)\",\"status\":\"\(status)\",\(details)}"
        }
    }

    private static func outputText(_ text: String) -> String {
        "{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":\"\(text)\"}"
    }

    private static func message(_ id: String, status: String, text: String) -> String {
        """
        {"id":"\(id)","type":"message","status":"\(status)","content":[\(outputText(text))],"role":"assistant"}
        """
    }

    private static func response(_ c: ReplyContext, id: String, status: String, output: String,
                                 usage: String, capped: Bool) -> String {
        let maxOutput = c.peek.maxOutputTokens.map(String.init) ?? "null"
        let incomplete = capped ? "{\"reason\":\"max_output_tokens\"}" : "null"
        return """
            {"id":"\(id)","object":"response","created_at":\(c.created),"status":"\(status)",\
            "background":false,"error":null,"incomplete_details":\(incomplete),"instructions":null,\
            "max_output_tokens":\(maxOutput),"max_tool_calls":null,"model":"\(c.model)",\
            "output":[\(output)],"parallel_tool_calls":true,"previous_response_id":null,\
            "reasoning":{"effort":null,"summary":null},"service_tier":"\(c.servedTier)","store":true,\
            "temperature":1.0,"text":{"format":{"type":"text"},"verbosity":"medium"},\
            "tool_choice":"auto","tools":[],"top_logprobs":0,"top_p":1.0,"truncation":"disabled",\
            "usage":\(usage),"user":null,"metadata":{}}
            """
    }

    /// Responses usage: `input_tokens` includes cached, `output_tokens` includes reasoning.
    static func usage(_ u: FakeUsage) -> String {
        """
        {"input_tokens":\(u.promptTokens),"input_tokens_details":{"cached_tokens":\(u.cachedInputTokens)},\
        "output_tokens":\(u.outputTokens),"output_tokens_details":{"reasoning_tokens":\(u.reasoningTokens)},\
        "total_tokens":\(u.promptTokens + u.outputTokens)}
        """
    }
}

import Foundation
import NIOCore

/// OpenAI chat completions, legacy completions, embeddings and the models list, in the real
/// API's shapes (key order included, as far as it matters to byte-level tests).
enum OpenAIReplies {
    static let fingerprint = "fp_fakellm"

    // MARK: chat completions

    static func chat(_ c: ReplyContext) -> ReplyPlan {
        let finish = c.usage.hitOutputCap ? "length" : "stop"
        let id = "chatcmpl-" + c.idSuffix
        guard c.peek.stream else {
            return .body("""
                {"id":"\(id)","object":"chat.completion","created":\(c.created),"model":"\(c.model)",\
                "choices":[{"index":0,"message":{"role":"assistant","content":"\(c.content)","refusal":null,\
                "annotations":[]},"logprobs":null,"finish_reason":"\(finish)"}],"usage":\(usage(c.usage)),\
                "service_tier":"\(c.servedTier)","system_fingerprint":"\(fingerprint)"}
                """, delay: c.generationTime)
        }
        // Every chunk shares this head; `"usage":null` rides on each chunk only when the
        // client asked for the usage chunk, as the real API does.
        let head = """
            {"id":"\(id)","object":"chat.completion.chunk","created":\(c.created),"model":"\(c.model)",\
            "service_tier":"\(c.servedTier)","system_fingerprint":"\(fingerprint)","choices":[
            """
        let tail = c.peek.includeUsage ? "],\"usage\":null}" : "]}"
        let n = c.usage.contentTokens
        var pieces: [ReplyPiece] = []
        pieces.reserveCapacity(n + 4)
        pieces.append(piece(head + """
            {"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}
            """ + tail))
        for index in 0..<n {
            pieces.append(piece(head + """
                {"index":0,"delta":{"content":"\(c.delta(index))"},"logprobs":null,"finish_reason":null}
                """ + tail, delay: c.chunkGap))
        }
        pieces.append(piece(head + """
            {"index":0,"delta":{},"logprobs":null,"finish_reason":"\(finish)"}
            """ + tail))
        if c.peek.includeUsage {
            pieces.append(piece(head + "],\"usage\":" + usage(c.usage) + "}"))
        }
        pieces.append(done)
        return .eventStream(pieces)
    }

    // MARK: legacy completions

    static func completion(_ c: ReplyContext) -> ReplyPlan {
        let finish = c.usage.hitOutputCap ? "length" : "stop"
        let id = "cmpl-" + c.idSuffix
        guard c.peek.stream else {
            return .body("""
                {"id":"\(id)","object":"text_completion","created":\(c.created),"model":"\(c.model)",\
                "system_fingerprint":"\(fingerprint)","choices":[{"text":"\(c.content)","index":0,\
                "logprobs":null,"finish_reason":"\(finish)"}],"usage":\(usage(c.usage))}
                """, delay: c.generationTime)
        }
        let head = """
            {"id":"\(id)","object":"text_completion","created":\(c.created),"choices":[
            """
        let tail = "],\"model\":\"\(c.model)\",\"system_fingerprint\":\"\(fingerprint)\""
            + (c.peek.includeUsage ? ",\"usage\":null}" : "}")
        let n = c.usage.contentTokens
        var pieces: [ReplyPiece] = []
        pieces.reserveCapacity(n + 3)
        for index in 0..<n {
            pieces.append(piece(head + """
                {"text":"\(c.delta(index))","index":0,"logprobs":null,"finish_reason":null}
                """ + tail, delay: c.chunkGap))
        }
        pieces.append(piece(head + """
            {"text":"","index":0,"logprobs":null,"finish_reason":"\(finish)"}
            """ + tail))
        if c.peek.includeUsage {
            pieces.append(piece(head + "],\"model\":\"\(c.model)\",\"system_fingerprint\":\"\(fingerprint)\","
                + "\"usage\":" + usage(c.usage) + "}"))
        }
        pieces.append(done)
        return .eventStream(pieces)
    }

    // MARK: embeddings

    /// Vectors of `dimensions` (default 16) deterministic floats per input; base64 of
    /// little-endian float32 when asked (the OpenAI SDK asks by default), else a JSON list.
    static func embeddings(_ c: ReplyContext) -> ReplyPlan {
        let dimensions = min(max(1, c.peek.dimensions ?? 16), 8192)
        var data = ""
        for index in 0..<c.peek.inputCount {
            if index > 0 { data += "," }
            let vector = embedding(index: index, dimensions: dimensions)
            let encoded = c.peek.base64Embeddings
                ? "\"\(base64(vector))\""
                : "[" + vector.map { "\($0)" }.joined(separator: ",") + "]"
            data += "{\"object\":\"embedding\",\"index\":\(index),\"embedding\":\(encoded)}"
        }
        let tokens = c.usage.uncachedInputTokens
        return .body("""
            {"object":"list","data":[\(data)],"model":"\(c.model)",\
            "usage":{"prompt_tokens":\(tokens),"total_tokens":\(tokens)}}
            """)
    }

    static func embedding(index: Int, dimensions: Int) -> [Float] {
        (0..<dimensions).map { Float(($0 * 7 + index * 3) % 17 - 8) / 16 }
    }

    private static func base64(_ vector: [Float]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(vector.count * 4)
        for value in vector {
            let bits = value.bitPattern.littleEndian
            withUnsafeBytes(of: bits) { bytes.append(contentsOf: $0) }
        }
        return Data(bytes).base64EncodedString()
    }

    // MARK: models

    static let modelIDs = [
        "gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini", "o4-mini",
        "gpt-3.5-turbo-instruct", "text-embedding-3-small", "text-embedding-3-large",
    ]

    static let modelList: String = {
        let entries = modelIDs.map { model(id: $0) }
        return "{\"object\":\"list\",\"data\":[" + entries.joined(separator: ",") + "]}"
    }()

    static func model(id: String) -> String {
        "{\"id\":\"\(jsonEscaped(id))\",\"object\":\"model\",\"created\":1686935002,\"owned_by\":\"system\"}"
    }

    // MARK: shared

    /// Chat and completions usage; `completion_tokens` includes reasoning.
    static func usage(_ u: FakeUsage) -> String {
        """
        {"prompt_tokens":\(u.promptTokens),"completion_tokens":\(u.outputTokens),\
        "total_tokens":\(u.promptTokens + u.outputTokens),\
        "prompt_tokens_details":{"cached_tokens":\(u.cachedInputTokens),"audio_tokens":\(u.audioInputTokens)},\
        "completion_tokens_details":{"reasoning_tokens":\(u.reasoningTokens),"audio_tokens":\(u.audioOutputTokens),\
        "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}
        """
    }

    static let done = ReplyPiece(bytes: ByteBuffer(string: "data: [DONE]\n\n"), delay: .zero)

    private static func piece(_ json: String, delay: Duration = .zero) -> ReplyPiece {
        ReplyPiece(bytes: .sseData(json), delay: delay)
    }
}

import Metering
import NIOCore

/// Response payloads in the providers' real wire formats (ids shortened, fields as sent).
enum Fixtures {
    /// Joins SSE blocks, each followed by a blank line, with the given line ending.
    static func sse(_ blocks: [String], newline: String = "\n") -> [UInt8] {
        Array(blocks.map { $0.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: newline)
            + newline + newline }.joined().utf8)
    }

    // MARK: OpenAI chat.completions

    static let chatBody = #"""
    {
      "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
      "object": "chat.completion",
      "created": 1741570283,
      "model": "o3-mini-2025-01-31",
      "choices": [
        {
          "index": 0,
          "message": {
            "role": "assistant",
            "content": "The \"usage\": {} field and \u00e9t\u00e9 \ud83d\ude00 are in the text.",
            "refusal": null,
            "annotations": []
          },
          "logprobs": null,
          "finish_reason": "stop"
        }
      ],
      "usage": {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {
          "cached_tokens": 1920,
          "audio_tokens": 0
        },
        "completion_tokens_details": {
          "reasoning_tokens": 192,
          "audio_tokens": 0,
          "accepted_prediction_tokens": 0,
          "rejected_prediction_tokens": 0
        }
      },
      "service_tier": "default",
      "system_fingerprint": "fp_fc9f1d7035"
    }
    """#
    static let chatUsage = Usage(inputTokens: 86, cachedInputTokens: 1920, outputTokens: 300, reasoningTokens: 192)

    private static let chunkHead = #"{"id":"chatcmpl-AZ8yVBnVMx8j2GSMEnn3ZQ0x","object":"chat.completion.chunk","created":1733003919,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_7f6be3efb0","#

    static let chatStreamEvents: [String] = [
        "data: " + chunkHead + #""choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        "data: " + chunkHead + #""choices":[{"index":0,"delta":{"content":"Say \"usage\": {\"x\": 1} and \"error\""},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        "data: " + chunkHead + #""choices":[{"index":0,"delta":{"content":" caf\u00e9 \ud83d\ude00"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        "data: " + chunkHead + #""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
        "data: " + chunkHead + #""choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":57,"total_tokens":1257,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#,
        "data: [DONE]",
    ]
    static let chatStreamUsageIndex = 4
    static let chatStreamUsage = Usage(inputTokens: 176, cachedInputTokens: 1024, outputTokens: 57)
    static let chatStreamModel = "gpt-4o-2024-08-06"

    // MARK: OpenAI completions (legacy) and embeddings

    static let completionsStreamEvents: [String] = [
        #"data: {"id":"cmpl-8z1","object":"text_completion","created":1712345678,"choices":[{"text":"Hello","index":0,"logprobs":null,"finish_reason":null}],"model":"gpt-3.5-turbo-instruct","usage":null}"#,
        #"data: {"id":"cmpl-8z1","object":"text_completion","created":1712345678,"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"model":"gpt-3.5-turbo-instruct","usage":null}"#,
        #"data: {"id":"cmpl-8z1","object":"text_completion","created":1712345678,"model":"gpt-3.5-turbo-instruct","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":16,"total_tokens":21}}"#,
        "data: [DONE]",
    ]

    static let embeddingsBody = #"""
    {"object":"list","data":[{"object":"embedding","index":0,"embedding":[-0.006929283495992422,-0.005336422007530928,0.00047350498,-2.4547132E-5,1e-7]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}
    """#

    // MARK: OpenAI responses

    private static let responseObject = #""id":"resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b","object":"response","created_at":1741476542,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"o4-mini-2025-04-16","parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":"medium","summary":null},"store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","user":null,"metadata":{}"#

    static let responsesStreamEvents: [String] = [
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{" + responseObject + #","status":"in_progress","output":[],"usage":null}}"#,
        "event: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{" + responseObject + #","status":"in_progress","output":[],"usage":null}}"#,
        #"event: response.output_item.added\#ndata: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"rs_67ccd2bf","type":"reasoning","summary":[]}}"#,
        #"event: response.output_item.done\#ndata: {"type":"response.output_item.done","sequence_number":3,"output_index":0,"item":{"id":"rs_67ccd2bf","type":"reasoning","summary":[]}}"#,
        #"event: response.output_item.added\#ndata: {"type":"response.output_item.added","sequence_number":4,"output_index":1,"item":{"id":"msg_67ccd2c0","type":"message","status":"in_progress","content":[],"role":"assistant"}}"#,
        #"event: response.content_part.added\#ndata: {"type":"response.content_part.added","sequence_number":5,"item_id":"msg_67ccd2c0","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"text":""}}"#,
        #"event: response.output_text.delta\#ndata: {"type":"response.output_text.delta","sequence_number":6,"item_id":"msg_67ccd2c0","output_index":1,"content_index":0,"delta":"Hi","logprobs":[]}"#,
        #"event: response.output_text.delta\#ndata: {"type":"response.output_text.delta","sequence_number":7,"item_id":"msg_67ccd2c0","output_index":1,"content_index":0,"delta":" there \"response.completed\"!","logprobs":[]}"#,
        #"event: response.output_text.done\#ndata: {"type":"response.output_text.done","sequence_number":8,"item_id":"msg_67ccd2c0","output_index":1,"content_index":0,"text":"Hi there \"response.completed\"!","logprobs":[]}"#,
        #"event: response.content_part.done\#ndata: {"type":"response.content_part.done","sequence_number":9,"item_id":"msg_67ccd2c0","output_index":1,"content_index":0,"part":{"type":"output_text","annotations":[],"text":"Hi there \"response.completed\"!"}}"#,
        #"event: response.output_item.done\#ndata: {"type":"response.output_item.done","sequence_number":10,"output_index":1,"item":{"id":"msg_67ccd2c0","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"text":"Hi there \"response.completed\"!"}],"role":"assistant"}}"#,
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":11,\"response\":{" + responseObject + #","status":"completed","output":[{"id":"rs_67ccd2bf","type":"reasoning","summary":[]},{"id":"msg_67ccd2c0","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"text":"Hi there \"response.completed\"!"}],"role":"assistant"}],"usage":{"input_tokens":1510,"input_tokens_details":{"cached_tokens":1280},"output_tokens":845,"output_tokens_details":{"reasoning_tokens":768},"total_tokens":2355}}}"#,
    ]
    static let responsesUsage = Usage(inputTokens: 230, cachedInputTokens: 1280, outputTokens: 845, reasoningTokens: 768)
    static let responsesModel = "o4-mini-2025-04-16"

    static let responsesBody = "{" + responseObject + #","status":"completed","output":[{"id":"rs_67ccd2bf","type":"reasoning","summary":[]},{"id":"msg_67ccd2c0","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"text":"Hi there!"}],"role":"assistant"}],"usage":{"input_tokens":1510,"input_tokens_details":{"cached_tokens":1280},"output_tokens":845,"output_tokens_details":{"reasoning_tokens":768},"total_tokens":2355}}"#

    // MARK: Anthropic messages

    static let anthropicStreamEvents: [String] = [
        #"event: message_start\#ndata: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":21,"cache_creation_input_tokens":1843,"cache_read_input_tokens":12055,"cache_creation":{"ephemeral_5m_input_tokens":1843,"ephemeral_1h_input_tokens":0},"output_tokens":2,"service_tier":"standard"}}}"#,
        #"event: content_block_start\#ndata: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        #"event: ping\#ndata: {"type": "ping"}"#,
        #"event: content_block_delta\#ndata: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user says hello."}}"#,
        #"event: content_block_delta\#ndata: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}"#,
        #"event: content_block_stop\#ndata: {"type":"content_block_stop","index":0}"#,
        #"event: content_block_start\#ndata: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        #"event: content_block_delta\#ndata: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello! \"message_stop\" \u00e9"}}"#,
        #"event: content_block_stop\#ndata: {"type":"content_block_stop","index":1}"#,
        #"event: message_delta\#ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":87}}"#,
        #"event: message_stop\#ndata: {"type":"message_stop"}"#,
    ]
    static let anthropicUsage = Usage(inputTokens: 21, cachedInputTokens: 12055, cacheWriteTokens: 1843, outputTokens: 87)
    static let anthropicModel = "claude-sonnet-4-5-20250929"

    static let anthropicBody = #"""
    {"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi! My name is Claude."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":2095,"cache_creation_input_tokens":0,"cache_read_input_tokens":50000,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":503,"service_tier":"standard"}}
    """#

    // MARK: Errors

    static let openAIError = #"""
    {
        "error": {
            "message": "Incorrect API key provided: sk-abc. You can find your API key at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": null,
            "code": "invalid_api_key"
        }
    }
    """#

    static let anthropicError = #"{"type":"error","error":{"type":"not_found_error","message":"model: claude-nope"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#
}

extension ByteBuffer {
    init(_ bytes: some Sequence<UInt8>) {
        self.init(bytes: Array(bytes))
    }

    var bytes: [UInt8] { Array(readableBytesView) }
}

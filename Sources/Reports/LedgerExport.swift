import Ledger
import Metering

/// Raw ledger rows for finance and other tools: one CSV record or one JSON line per call, with
/// stable snake_case field names (the ledger's columns). Money is exact: `cost_picodollars` is
/// an integer string, `cost_usd` a decimal string with 12 decimals — never a float.
public enum LedgerExport {
    public enum Format: String, Sendable, CaseIterable {
        case csv, jsonl
    }

    /// Field names, in order: the CSV header and the JSON keys.
    public static let fields = [
        "id", "request_id", "started_at", "first_byte_at", "ended_at", "latency_us", "ttft_us", "upstream_us",
        "key_id", "user", "team", "plan", "dialect", "route", "provider", "model_requested", "model_served",
        "stream", "status", "outcome", "input_tokens", "cached_input_tokens", "cache_write_tokens",
        "output_tokens", "reasoning_tokens", "usage_source", "cost_picodollars", "cost_usd", "price_id",
        "output_cap_requested", "output_cap_applied", "error_message",
        // Appended (fields are never reordered): of `cache_write_tokens`, Anthropic's 1-hour writes.
        "cache_write_1h_tokens",
        // Searches of a server-side web search tool, each billed a fee.
        "web_searches",
        // Of `input_tokens` and `output_tokens`, the audio ones (priced apart).
        "audio_input_tokens", "audio_output_tokens",
        // Calls of the Responses API's file search tool, each billed a fee.
        "file_searches",
    ]

    /// The CSV header line (JSON lines have none).
    public static func header(_ format: Format) -> String? {
        format == .csv ? fields.map(CSVRendering.quoted).joined(separator: ",") + "\r\n" : nil
    }

    /// One call as a CSV record or a JSON line, newline included.
    public static func line(_ entry: LedgerEntry, format: Format) -> String {
        let values = values(of: entry)
        switch format {
        case .csv:
            return values.map { CSVRendering.quoted($0.text ?? "") }.joined(separator: ",") + "\r\n"
        case .jsonl:
            let members = zip(fields, values).map { name, value -> String in
                let json: String
                switch value {
                case .text(nil), .number(nil): json = "null"
                case .text(let text?): json = JSONString.literal(text)
                case .number(let number?): json = number
                }
                return JSONString.literal(name) + ":" + json
            }
            return "{" + members.joined(separator: ",") + "}\n"
        }
    }

    private enum Value {
        case text(String?)
        case number(String?)

        var text: String? {
            switch self {
            case .text(let t), .number(let t): return t
            }
        }
    }

    private static func values(of e: LedgerEntry) -> [Value] {
        func time(_ micros: Int64?) -> Value { .text(micros.map { Timestamp.iso8601(micros: $0) }) }
        func int(_ value: Int64?) -> Value { .number(value.map { String($0) }) }
        func count(_ value: Int?) -> Value { .number(value.map { String($0) }) }
        return [
            .text(e.id), .text(e.requestId), time(e.startedAt), time(e.firstByteAt), time(e.endedAt),
            int(e.latencyMicros), int(e.ttftMicros), int(e.upstreamMicros),
            .text(e.keyId), .text(e.user), .text(e.team), .text(e.plan), .text(e.dialect.rawValue), .text(e.route),
            .text(e.provider), .text(e.modelRequested), .text(e.modelServed),
            .number(e.stream ? "true" : "false"), count(e.status), .text(e.outcome.rawValue),
            count(e.usage.inputTokens), count(e.usage.cachedInputTokens), count(e.usage.cacheWriteTokens),
            count(e.usage.outputTokens), count(e.usage.reasoningTokens), .text(e.usageSource.rawValue),
            .text(String(e.cost.picodollars)), .text(e.cost.formatted(decimals: 12)), .text(e.priceId),
            count(e.outputCapRequested), count(e.outputCapApplied), .text(e.errorMessage),
            count(e.usage.cacheWrite1hTokens), count(e.usage.webSearches),
            count(e.usage.audioInputTokens), count(e.usage.audioOutputTokens),
            count(e.usage.fileSearches),
        ]
    }
}

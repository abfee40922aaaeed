/// What every answer builder needs about one request, worked out once by the router.
struct ReplyContext {
    let route: FakeRoute
    let peek: RequestPeek
    let usage: FakeUsage
    /// The requested model, JSON-escaped; FakeLLM serves it under the same name.
    let model: String
    /// The request's serial number, which makes every id unique within a server.
    let serial: Int
    /// Unix seconds.
    let created: Int
    let chunkGap: Duration
    /// Anthropic: where the call ran (`usage.inference_geo`), nil to leave the field out.
    let inferenceGeo: String?

    /// 24 characters, like the random part of real ids (`chatcmpl-…`, `msg_…`, `resp_…`).
    var idSuffix: String {
        let digits = String(serial)
        return "FAKE" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    /// How long a non-streaming answer takes after the first-byte delay: as long as the
    /// stream would have taken to deliver every delta.
    var generationTime: Duration { chunkGap * usage.contentTokens }

    /// Delta `index` of the content, JSON-escaped.
    func delta(_ index: Int) -> String {
        FakeText.escapedWords[index % FakeText.escapedWords.count]
    }

    var content: String { FakeText.escapedContent(deltas: usage.contentTokens) }

    /// The OpenAI `service_tier` the answer reports: `priority` or `flex` when asked, as the
    /// real API serves them; else `default`.
    var servedTier: String {
        peek.serviceTier == "priority" || peek.serviceTier == "flex" ? peek.serviceTier! : "default"
    }
}

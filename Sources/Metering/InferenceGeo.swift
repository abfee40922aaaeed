/// Anthropic's US-only inference: a request's `inference_geo: "us"` (or a workspace's default
/// geo) runs the call on US infrastructure only, at a multiple of every token price of its newest
/// models (1.1 from Claude Opus 4.6 and Sonnet 4.6). The answer's `usage.inference_geo` says
/// where it ran (`us`, `global`, or `not_available` for models without the choice).
public enum InferenceGeo {
    /// The value of a request's `inference_geo`, or of an answer's, that costs the US-only price.
    public static let us = "us"
    /// The value that asks for the global price: where the call may run anywhere.
    public static let global = "global"

    /// Whether the call runs in the US only: what the answer says, else what the request asked.
    public static func runsInUSOnly(served: String?, requested: String?) -> Bool {
        (served ?? requested) == us
    }

    /// Whether a call to Anthropic asking `requested` may run in the US only: unless it asks for
    /// the global geo, since a workspace's `default_inference_geo` may send it there unasked.
    public static func mayRunInUSOnly(requested: String?) -> Bool {
        requested != global
    }
}

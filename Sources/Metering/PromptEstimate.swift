/// A cheap, deliberately high guess at a request's prompt tokens, made before the call from
/// the body's size alone. Admission reserves it (rate limits, quota reservations); settlement
/// replaces it with the usage the provider reports, so a high guess only holds budget a
/// little longer, while a low one could let a payer overrun.
///
/// Rule: UTF-8 bytes of the body / 3, rounded up, at least 1.
///
/// Why this errs high:
/// - BPE tokenizers (OpenAI's cl100k/o200k, Anthropic's) average about 4 bytes of English per
///   token; counting 3 overstates prose by about a third.
/// - The JSON around the prompt (braces, quotes, `"role"`, `"content"`, `"model"`, tool
///   schemas' syntax, escapes such as `\n` or `\u00e9`) is counted byte for byte but is mostly
///   not tokenized, or costs far less than a token per 3 bytes (chat templates add only a
///   few tokens a message).
/// - CJK takes 3 UTF-8 bytes a character and current tokenizers spend about a token a
///   character or less, so there the rule is about even.
///
/// Where it can fall short (settlement corrects): text that tokenizes near a token per one or
/// two bytes (long digit strings, hex, random identifiers, some scripts such as Devanagari or
/// Cyrillic on older tokenizers, emoji), and tokens the provider adds that the body does not
/// show (Anthropic's tool-use system prompt, a few hundred tokens). Inline base64 images and
/// files go the other way: billed per image, not per byte, they are overstated many times.
public enum PromptEstimate {
    /// Bytes of body counted as one token.
    public static let bytesPerToken = 3

    public static func tokens(bodyBytes: Int) -> Int {
        guard bodyBytes > bytesPerToken else { return 1 }
        let (whole, rest) = bodyBytes.quotientAndRemainder(dividingBy: bytesPerToken)
        return rest == 0 ? whole : whole + 1
    }

    public static func tokens(_ peek: RequestPeek) -> Int {
        tokens(bodyBytes: peek.bodyBytes)
    }
}

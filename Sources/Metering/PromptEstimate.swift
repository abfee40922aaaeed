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
/// show (Anthropic's tool-use system prompt, a few hundred tokens).
///
/// Inline base64 images (`InlineImages`) are billed per image, not per byte: each counts
/// `tokensPerInlineImage` instead of its bytes / 3 (a 4 MB photo would otherwise read as 1.4M
/// tokens, and a budget refuse the call for a worst case of dollars). Inline audio (WAV, MP3)
/// counts `tokensPerAudioSecond` for each second it may play (`AudioLength`): a minute of WAV is
/// 3.8 MB of base64, 1.3M tokens by its bytes. Other inline files (PDF) still count by their
/// bytes, which overstates them.
public enum PromptEstimate {
    /// Bytes of body counted as one token.
    public static let bytesPerToken = 3
    /// One inline image: about the most Claude (width × height / 750 within its 1.15-megapixel
    /// limit) and gpt-4o's high detail (85 + 170 per 512-px tile, 8 tiles at most: 1,445) count
    /// for one image. Models that count more tokens per image at a lower price (gpt-4o-mini)
    /// are corrected at settlement.
    public static let tokensPerInlineImage = 1_600

    public static func tokens(bodyBytes: Int) -> Int {
        guard bodyBytes > bytesPerToken else { return 1 }
        let (whole, rest) = bodyBytes.quotientAndRemainder(dividingBy: bytesPerToken)
        return rest == 0 ? whole : whole + 1
    }

    /// One second of inline audio. OpenAI documents 10 a second for its Realtime API's input
    /// (one per 100 ms) and 20 for its spoken answers, and nothing for chat completions: twice
    /// the input's rate.
    public static let tokensPerAudioSecond = 20.0

    public static func tokens(_ peek: RequestPeek) -> Int {
        tokens(bodyBytes: peek.bodyBytes - peek.inlineImageBytes - peek.inlineAudioBytes)
            + peek.inlineImages * tokensPerInlineImage + audioTokens(peek)
    }

    /// Of `tokens(peek)`, the inline audio's.
    public static func audioTokens(_ peek: RequestPeek) -> Int {
        Int(min((peek.inlineAudioSeconds * tokensPerAudioSecond).rounded(.up), Double(Int32.max)))
    }
}

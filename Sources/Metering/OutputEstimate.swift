/// Output tokens of a stream that was cut short before the provider reported usage (the client
/// left, or a deadline passed), estimated from what was streamed so the partial use is billed
/// (recorded with `usage_source = estimated`).
///
/// Rule: the larger of (a) the number of events that carried generated text and (b) the text's
/// bytes / 4, rounded up. Why: providers stream at least one token per non-empty delta (OpenAI
/// chat sends about one token per chunk, so (a) is close there), and BPE tokenizers average
/// about 4 bytes of English per token (Anthropic and the Responses API send several tokens per
/// delta, where (b) decides). Text is the value of the delta's text field (`content`, `text`,
/// `delta`, `thinking`, `partial_json`, `reasoning_content`, `reasoning`, `arguments`, when a
/// string, with or without whitespace around the colon) counted as the raw
/// JSON string bytes, escapes included. It errs low for scripts that take more bytes per token
/// than they use (CJK: ~3 bytes, ~1 token) only through (b), which (a) then bounds from below.
///
/// A spoken answer (OpenAI chat's `audio`: `transcript` is text, `data` base64 sound) adds
/// 20 tokens for each second of its sound (OpenAI's rate for spoken answers, one per 50 ms):
/// streamed sound is 16-bit 24 kHz PCM (48,000 bytes a second, the only format chat completions
/// stream); a whole answer's is a file in the format asked for, timed by its header if a WAV,
/// else as if at 8 kbit/s (`AudioLength`), which overstates MP3 and Opus rather than miss them.
public enum OutputEstimate {
    public static let bytesPerToken = 4
    /// Streamed sound: 16-bit 24 kHz mono PCM.
    public static let streamedSoundBytesPerSecond = 48_000.0
    public static let audioTokensPerSecond = 20.0

    public static func tokens(textBytes: Int, textEvents: Int) -> Int {
        max(textEvents, (textBytes + bytesPerToken - 1) / bytesPerToken)
    }

    public static func audioTokens(seconds: Double) -> Int {
        Int(min((seconds * audioTokensPerSecond).rounded(.up), Double(Int32.max)))
    }

    /// The estimate of `text`'s output: its text's tokens and, of them, its sound's.
    static func tokens(_ text: StreamedText) -> (all: Int, audio: Int) {
        let audio = audioTokens(seconds: text.audioSeconds)
        return (tokens(textBytes: text.bytes, textEvents: text.events) + audio, audio)
    }
}

/// Counts the generated text of a stream's events, for `OutputEstimate`.
struct StreamedText {
    private(set) var bytes = 0
    private(set) var events = 0
    /// How long the sound (`audio.data`, base64, counted apart from the text) plays.
    private(set) var audioSeconds = 0.0

    /// The delta's text fields, as quoted keys; their value must be a string (`"key": "…"`,
    /// with or without whitespace around the colon, as compact and pretty-printed JSON write it).
    private static let keys: [StaticString] = [
        "\"content\"", "\"text\"", "\"delta\"", "\"thinking\"", "\"partial_json\"",
        "\"reasoning_content\"", "\"reasoning\"", "\"arguments\"", "\"transcript\"",
    ]

    /// Adds the text of one event's data: the first non-empty text field (an event carries one delta).
    mutating func count(_ data: UnsafeRawBufferPointer) {
        count(data, all: false)
    }

    /// Adds every text field of a whole answer (several choices or content blocks).
    mutating func countAll(_ data: UnsafeRawBufferPointer) {
        count(data, all: true)
    }

    private mutating func count(_ data: UnsafeRawBufferPointer, all: Bool) {
        var i = 0
        while true {
            i = ByteSearch.first(UInt8(ascii: "\""), in: data, from: i)
            guard i < data.count else { return }
            if StreamReading.matches(data, at: i, "\"audio\"") {
                // Its sound, then on past the key: its transcript is text.
                if let sound = Self.sound(data, after: i + 7) {
                    let length = sound.end - sound.start
                    // A whole answer's sound is a file; a stream's, bare PCM.
                    audioSeconds += all ? AudioLength.file(Base64Text(body: data, token: sound), length: length)
                        : Double(length) * 3 / 4 / OutputEstimate.streamedSoundBytesPerSecond
                }
                i += 7
                continue
            }
            if let key = Self.keys.first(where: { StreamReading.matches(data, at: i, $0) }),
               let start = Self.stringValue(data, after: i + key.utf8CodeUnitCount) {
                let length = Self.stringLength(data, from: start)
                if length > 0 {
                    bytes += length
                    events += 1
                    guard all else { return }
                }
                // An empty field (`"content":""` before a reasoning model's `"reasoning"`) is
                // not the delta's text: keep looking.
                i = start + length + 1
                continue
            }
            i += 1
        }
    }

    /// Where the string value after a key ending at `index` starts (past `:` and the opening
    /// quote, whitespace allowed around the colon); nil if the value is not a string.
    private static func stringValue(_ data: UnsafeRawBufferPointer, after index: Int) -> Int? {
        func skipSpace(_ i: inout Int) {
            while i < data.count, data[i] == 0x20 || data[i] == 0x09 || data[i] == 0x0A || data[i] == 0x0D { i += 1 }
        }
        var i = index
        skipSpace(&i)
        guard i < data.count, data[i] == UInt8(ascii: ":") else { return nil }
        i += 1
        skipSpace(&i)
        guard i < data.count, data[i] == UInt8(ascii: "\"") else { return nil }
        return i + 1
    }

    /// The `data` string of the object that is the value after a key ending at `index`
    /// (`"audio": {… "data": "…" …}`), quotes excluded; nil if there is none.
    private static func sound(_ data: UnsafeRawBufferPointer, after index: Int) -> JSONScanner.StringToken? {
        var i = index
        while i < data.count, data[i] == 0x20 || data[i] == UInt8(ascii: ":") || data[i] == 0x0A || data[i] == 0x0D || data[i] == 0x09 { i += 1 }
        guard i < data.count, data[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        while i < data.count, data[i] != UInt8(ascii: "}") {
            guard data[i] == UInt8(ascii: "\"") else { i += 1; continue }
            if StreamReading.matches(data, at: i, "\"data\""), let start = stringValue(data, after: i + 6) {
                // `Base64Text` steps over `\/` itself: no pass to find escapes.
                return JSONScanner.StringToken(start: start, end: start + stringLength(data, from: start), hasEscapes: false)
            }
            i += 1 + stringLength(data, from: i + 1) + 1  // past this string
        }
        return nil
    }

    /// Bytes of the JSON string starting at `start` up to its closing quote (escapes included).
    private static func stringLength(_ data: UnsafeRawBufferPointer, from start: Int) -> Int {
        var i = start
        while i < data.count {
            switch data[i] {
            case UInt8(ascii: "\\"): i += 2
            case UInt8(ascii: "\""): return i - start
            default: i += 1
            }
        }
        return min(i, data.count) - start
    }
}

/// Images and audio sent inline as base64 strings, where the dialects put them: an image as a
/// data URL (`data:image/…;base64,…`) in OpenAI's `url` or the Responses API's `image_url`, or
/// bare base64 with an image format's signature as Anthropic's `source.data`; audio as bare base64
/// of a WAV or MP3 file in OpenAI's `input_audio.data`. Only long strings under those names are
/// looked at, so text costs nothing here, and text in a text field is never taken for either; a
/// bare `data` string counts only when it is base64 throughout (Anthropic's plain-text document
/// source is `data` too, and text behind a signature must not pass for a picture or a sound),
/// and an image only when its object has one `type`, `base64`, before or after it: a plain-text
/// source (`"type":"text"`) is billed as text however it starts, even as base64's characters,
/// and so is one with a second `type` (a parser may read the last), escaped or not.
struct InlineMedia: Sendable, Hashable {
    private(set) var images = 0
    /// The images' string bytes (counted per image by `PromptEstimate`, not per byte).
    private(set) var imageBytes = 0
    /// The audio's string bytes, and the seconds they play at most (`AudioLength`).
    private(set) var audioBytes = 0
    private(set) var audioSeconds = 0.0

    /// One bit per open object's depth (below 64): a `type` of `base64` was met in it, or a
    /// `type` of another value or a second `type`. Deeper objects hold no image.
    private var base64Types: UInt64 = 0
    private var otherTypes: UInt64 = 0
    /// A bare image in the object at `pendingDepth`, judged when that object closes. One slot:
    /// a second one before it is judged leaves the first as text, which only ever overstates.
    private var pendingDepth = -1
    private var pendingBytes = 0

    static let shortest = 1_024
    /// JPEG, PNG and GIF signatures in base64. WebP and WAV are RIFF files: their tags (`WEBP`,
    /// `WAVE`), base64 `RUJQ` and `QVZF` at offset 12, tell them apart.
    private static let imageSignatures: [StaticString] = ["/9j/", "iVBORw0KGgo", "R0lGOD"]
    /// MP3: an ID3 tag, or a frame's sync bits (eleven set bits, twelve for MPEG-1 and 2).
    private static let mp3Signatures: [StaticString] = ["SUQz", "//"]

    /// A string value of member `member` in the container at `depth` (an object's when
    /// `inObject`, else an array's element after that member), which lies at `path`.
    mutating func note(_ token: JSONScanner.StringToken, member: JSONScanner.StringToken, at path: MediaPath,
                       depth: Int, inObject: Bool, in body: UnsafeRawBufferPointer) {
        let length = token.end - token.start
        func named(_ name: StaticString) -> Bool {
            !member.hasEscapes && member.end - member.start == name.utf8CodeUnitCount
                && StreamReading.matches(body, at: member.start, name)
        }
        if inObject, named("type") || (member.hasEscapes && JSONScanner(body).string(member) == "type") {
            noteType(base64: length == 6 && !token.hasEscapes && StreamReading.matches(body, at: token.start, "base64"),
                     depth: depth)
            return
        }
        guard length >= Self.shortest else { return }
        let text = Base64Text(body: body, token: token)
        if named("url") && path == .openAIImageURL || named("image_url") && path.isResponsesPart {
            guard text.starts("data:image/") && Self.isBase64DataURL(body, from: token.start) else { return }
        } else if named("data") {
            let riff = text.starts("UklGR")
            let inAudio = path == .openAIInputAudio
            if inAudio, riff && text.starts("QVZF", at: 12) || Self.mp3Signatures.contains(where: { text.starts($0) }) {
                guard text.isBase64 else { return }
                audioBytes += length
                audioSeconds += AudioLength.file(text, length: length)
                return
            }
            guard path.isAnthropicSource,
                  Self.imageSignatures.contains(where: { text.starts($0) }) || (riff && text.starts("RUJQ", at: 12)),
                  text.isBase64 else { return }
            (pendingDepth, pendingBytes) = (depth, length)  // judged by its object's type, at its close
            return
        } else {
            return
        }
        images += 1
        imageBytes += length
    }

    private mutating func noteType(base64: Bool, depth: Int) {
        guard depth < 64 else { return }
        let bit: UInt64 = 1 << UInt64(depth)
        if base64, (base64Types | otherTypes) & bit == 0 {
            base64Types |= bit
        } else {
            otherTypes |= bit
        }
    }

    /// The object or array at `depth` closed: an image pending in it counts if its one `type`
    /// was `base64`; its marks go.
    mutating func close(depth: Int) {
        if depth < 64 {
            let bit: UInt64 = 1 << UInt64(depth)
            if pendingDepth == depth, base64Types & bit != 0, otherTypes & bit == 0 {
                images += 1
                imageBytes += pendingBytes
            }
            base64Types &= ~bit
            otherTypes &= ~bit
        }
        if pendingDepth == depth { pendingDepth = -1 }
    }

    /// `;base64,` ends the data URL's media type (within its first 64 bytes).
    private static func isBase64DataURL(_ body: UnsafeRawBufferPointer, from start: Int) -> Bool {
        let marker: StaticString = ";base64,"
        for at in start..<min(start + 64, body.count) where StreamReading.matches(body, at: at, marker) { return true }
        return false
    }
}

/// Where a string lies in a request body, as the members that opened its containers (array
/// elements as such), four bits a level for the first 16 levels. Inline media counts only at the
/// places the APIs read it from; the same shapes elsewhere (a tool's schema, a tool call's input,
/// an unknown member) are text to the provider, billed as such, and estimated by their bytes.
struct MediaPath: Hashable, Sendable {
    private var code: UInt64
    /// 1 when the scan did not start at the body's top: no place there is one media counts at.
    private let shift: Int

    private enum Name: UInt64 {
        case messages = 1, content, source, imageURL, input, output, inputAudio, other
        case element = 0xE
    }

    init(fromTop: Bool) {
        code = fromTop ? 0 : Name.other.rawValue
        shift = fromTop ? 0 : 1
    }

    private init(_ names: [Name]) {
        code = names.enumerated().reduce(0) { $0 | $1.element.rawValue << UInt64(4 * $1.offset) }
        shift = 0
    }

    /// A container opens at `level`: the value of `member`, or an array's element (nil).
    mutating func enter(level: Int, member: JSONScanner.StringToken?, in body: UnsafeRawBufferPointer) {
        let at = level + shift
        guard at < 16 else { return }  // deeper than any place media counts; the levels below say so
        code |= Self.name(member, in: body).rawValue << UInt64(4 * at)
    }

    mutating func leave(level: Int) {
        let at = level + shift
        guard at < 16 else { return }
        code &= ~(0xF << UInt64(4 * at))
    }

    private static func name(_ member: JSONScanner.StringToken?, in body: UnsafeRawBufferPointer) -> Name {
        guard let member else { return .element }
        guard !member.hasEscapes else { return .other }
        func named(_ name: StaticString) -> Bool {
            member.end - member.start == name.utf8CodeUnitCount && StreamReading.matches(body, at: member.start, name)
        }
        if named("messages") { return .messages }
        if named("content") { return .content }
        if named("source") { return .source }
        if named("image_url") { return .imageURL }
        if named("input") { return .input }
        if named("output") { return .output }
        if named("input_audio") { return .inputAudio }
        return .other
    }

    /// Anthropic: `messages[].content[].source`, or inside a tool result's `content[]`.
    static let anthropicSource = MediaPath([.messages, .element, .content, .element, .source])
    static let anthropicToolResultSource = MediaPath([.messages, .element, .content, .element, .content, .element, .source])
    /// OpenAI chat: `messages[].content[].image_url` (its `url`), `.input_audio` (its `data`).
    static let openAIImageURL = MediaPath([.messages, .element, .content, .element, .imageURL])
    static let openAIInputAudio = MediaPath([.messages, .element, .content, .element, .inputAudio])
    /// The Responses API: `input[].content[]` and a tool output's `input[].output[]` (their `image_url`).
    static let responsesContentPart = MediaPath([.input, .element, .content, .element])
    static let responsesOutputPart = MediaPath([.input, .element, .output, .element])

    var isAnthropicSource: Bool { self == Self.anthropicSource || self == Self.anthropicToolResultSource }
    var isResponsesPart: Bool { self == Self.responsesContentPart || self == Self.responsesOutputPart }
}

/// How long inline audio plays, from its base64 text: the most it can be, since the estimate it
/// feeds must not fall short.
enum AudioLength {
    /// The lowest bitrate assumed for audio whose header is not read (MP3): 8 kbit/s, MPEG-2.5's
    /// least. Speech is usually 4-16 times that, so is overstated as much.
    static let lowestBytesPerSecond = 1_000.0
    /// The most a WAV's header may claim: 96 kHz 16-bit stereo. A higher claim (a forged header
    /// would make an hour of sound read as seconds) counts as this.
    static let highestWAVBytesPerSecond = 384_000

    /// A WAV file's length from its `fmt ` chunk (which follows the RIFF header in every WAV the
    /// tools write): its byte rate, but no more than its sample rate × block size (what decoders
    /// play it at) nor `highestWAVBytesPerSecond`; else as an MP3's.
    static func wav(_ text: Base64Text, length: Int) -> Double {
        // Bytes 24-35 are base64 characters 32-47: the sample rate (24-27), the byte rate (28-31)
        // and the block size (32-33), little-endian.
        guard text.starts("Zm10", at: 16), let b = text.decode(from: 32, groups: 4) else { return mp3(length: length) }
        func int(_ at: Int, _ count: Int) -> Int { (0..<count).reduce(0) { $0 | Int(b[at + $1]) << (8 * $1) } }
        let played = int(0, 4) * int(8, 2)
        let rate = min(int(4, 4), played, highestWAVBytesPerSecond)
        // Below 8 kHz 8-bit mono, the header is not a real one.
        guard rate >= 8_000 else { return mp3(length: length) }
        return Double(length) * 3 / 4 / Double(rate)
    }

    static func mp3(length: Int) -> Double { Double(length) * 3 / 4 / lowestBytesPerSecond }

    /// A sound file's length: a WAV's (a RIFF file) by its header, any other as an MP3's.
    static func file(_ text: Base64Text, length: Int) -> Double {
        text.starts("UklGR") ? wav(text, length: length) : mp3(length: length)
    }
}

/// A JSON string token read as base64 text: `/` may be written `\/` (PHP's json_encode does), and
/// base64 has no other escapes. Offsets count decoded characters.
struct Base64Text {
    let body: UnsafeRawBufferPointer
    let token: JSONScanner.StringToken

    /// The byte index of character `offset`, stepping over escapes; nil past the end.
    private func index(of offset: Int) -> Int? {
        var at = token.start, seen = 0
        while seen < offset {
            guard at < token.end else { return nil }
            at += body[at] == UInt8(ascii: "\\") ? 2 : 1
            seen += 1
        }
        return at < token.end ? at : nil
    }

    /// The character at `at` (an index of `body`) and the index after it.
    private func character(at: Int) -> (UInt8, next: Int)? {
        guard at < token.end else { return nil }
        if body[at] == UInt8(ascii: "\\") {
            guard at + 1 < token.end, body[at + 1] == UInt8(ascii: "/") else { return nil }
            return (UInt8(ascii: "/"), at + 2)
        }
        return (body[at], at + 1)
    }

    func starts(_ literal: StaticString, at offset: Int = 0) -> Bool {
        guard var at = index(of: offset) else { return false }
        let text = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        for byte in text {
            guard let (c, next) = character(at: at), c == byte else { return false }
            at = next
        }
        return true
    }

    /// Every character is base64's (`=` padding included), `/` written either way: text that
    /// merely starts like a signature is not.
    var isBase64: Bool {
        // One table lookup a byte, on bytes and a table without bounds checks: a 4 MB image
        // is read through once more here.
        Self.alphabet.withUnsafeBufferPointer { table in
            let bytes = body.assumingMemoryBound(to: UInt8.self)
            var at = token.start
            let end = token.end
            while at < end {
                let c = bytes[at]
                if table[Int(c)] != 0 {
                    at += 1
                } else if c == UInt8(ascii: "\\"), at + 1 < end, bytes[at + 1] == UInt8(ascii: "/") {
                    at += 2
                } else {
                    return false
                }
            }
            return true
        }
    }

    /// Base64's characters and `=`, by byte: 1, else 0.
    private static let alphabet: [UInt8] = (0..<256).map { value(of: UInt8($0)) != nil || $0 == Int(UInt8(ascii: "=")) ? 1 : 0 }

    /// `groups` groups of four characters from character `offset`, decoded (three bytes each).
    func decode(from offset: Int, groups: Int) -> [UInt8]? {
        guard var at = index(of: offset) else { return nil }
        var bytes: [UInt8] = []
        for _ in 0..<groups {
            var bits = 0
            for _ in 0..<4 {
                guard let (c, next) = character(at: at), let v = Self.value(of: c) else { return nil }
                bits = bits << 6 | v
                at = next
            }
            bytes += [UInt8(bits >> 16), UInt8(bits >> 8 & 0xFF), UInt8(bits & 0xFF)]
        }
        return bytes
    }

    private static func value(of c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return Int(c - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return Int(c - UInt8(ascii: "a")) + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(c - UInt8(ascii: "0")) + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}

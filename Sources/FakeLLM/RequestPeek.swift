/// The few request-body fields FakeLLM needs, read with a byte scan of the top-level JSON
/// object (no Foundation decoding on the hot path).
///
/// Only top-level keys count: a `"model"` nested in tools or metadata is skipped along with
/// its parent value. The scan checks the object's structure (strings, brackets) but not the
/// grammar of numbers and literals, which is all a fake needs.
struct RequestPeek: Sendable {
    /// The body is a JSON object (false for an empty or malformed body).
    var isJSONObject = false
    var model: String?
    var stream = false
    /// `"stream_options": {"include_usage": true}`.
    var includeUsage = false
    /// The body has a top-level `stream_options`, whatever its value.
    var hasStreamOptions = false
    /// `max_tokens`, `max_completion_tokens` or `max_output_tokens`, whichever came last.
    var maxOutputTokens: Int?
    /// Embeddings: how many inputs (`"input": "x"` is one, `["a","b"]` two, `[1,2,3]` one).
    var inputCount = 1
    /// Embeddings: `"encoding_format": "base64"` (the OpenAI SDK's default).
    var base64Embeddings = false
    /// Embeddings: the requested vector length.
    var dimensions: Int?
    /// OpenAI's `service_tier` and Anthropic's `speed`, as asked.
    var serviceTier: String?
    var speed: String?
    /// Anthropic's `inference_geo`, as asked.
    var inferenceGeo: String?

    init(_ bytes: UnsafeRawBufferPointer) {
        var scanner = JSONScanner(bytes: bytes)
        let reader = scanner  // reads values while `scanner` walks the members
        scanner.skipWhitespace()
        isJSONObject = scanner.members { key, value in
            switch key {
            case "model": model = reader.string(in: value)
            case "stream": stream = reader.isTrue(value)
            case "max_tokens", "max_completion_tokens", "max_output_tokens":
                if let n = reader.integer(in: value) { maxOutputTokens = n }
            case "stream_options":
                hasStreamOptions = true
                var nested = JSONScanner(bytes: bytes, position: value.lowerBound)
                _ = nested.members { innerKey, innerValue in
                    if innerKey == "include_usage" { includeUsage = reader.isTrue(innerValue) }
                }
            case "input":
                if let count = reader.arrayInputCount(value) { inputCount = count }
            case "encoding_format": base64Embeddings = reader.string(in: value) == "base64"
            case "dimensions": dimensions = reader.integer(in: value)
            case "service_tier": serviceTier = reader.string(in: value)
            case "speed": speed = reader.string(in: value)
            case "inference_geo": inferenceGeo = reader.string(in: value)
            default: break
            }
        }
        if isJSONObject {
            scanner.skipWhitespace()
            isJSONObject = scanner.atEnd
        }
    }

    init(_ bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { RequestPeek($0) }
    }
}

/// A forward-only JSON scanner over raw bytes: finds value boundaries, decodes only what asked.
struct JSONScanner {
    let bytes: UnsafeRawBufferPointer
    var position: Int

    init(bytes: UnsafeRawBufferPointer, position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    var atEnd: Bool { position >= bytes.count }

    mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    /// Calls `body` with each member's key (decoded) and value range; the scanner must stand
    /// on `{`. Returns false on malformed input.
    mutating func members(_ body: (String, Range<Int>) -> Void) -> Bool {
        skipWhitespace()
        guard position < bytes.count, bytes[position] == UInt8(ascii: "{") else { return false }
        position += 1
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return true }
        while true {
            skipWhitespace()
            let keyStart = position
            guard skipString() else { return false }
            let key = decodeString(keyStart..<position)
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { return false }
            position += 1
            skipWhitespace()
            let valueStart = position
            guard skipValue() else { return false }
            body(key, valueStart..<position)
            skipWhitespace()
            guard position < bytes.count else { return false }
            switch bytes[position] {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return true
            default: return false
            }
        }
    }

    /// Skips a string starting at the opening quote; leaves the scanner after the closing one.
    mutating func skipString() -> Bool {
        guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { return false }
        position += 1
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: "\\"): position += 2
            case UInt8(ascii: "\""): position += 1; return true
            default: position += 1
            }
        }
        return false
    }

    /// Skips any value: strings, nested objects and arrays (bracket depth, string-aware), or
    /// a number/literal up to the next delimiter.
    mutating func skipValue() -> Bool {
        guard position < bytes.count else { return false }
        switch bytes[position] {
        case UInt8(ascii: "\""):
            return skipString()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while position < bytes.count {
                switch bytes[position] {
                case UInt8(ascii: "\""):
                    guard skipString() else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { position += 1; return true }
                default: break
                }
                position += 1
            }
            return false
        default:
            let start = position
            while position < bytes.count {
                switch bytes[position] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"),
                     0x20, 0x09, 0x0A, 0x0D:
                    return position > start
                default: position += 1
                }
            }
            return position > start
        }
    }

    func isTrue(_ range: Range<Int>) -> Bool {
        range.count == 4 && bytes[range.lowerBound] == UInt8(ascii: "t")
    }

    func integer(in range: Range<Int>) -> Int? {
        var value = 0
        var sawDigit = false
        for index in range {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            value = product + Int(byte - UInt8(ascii: "0"))
            sawDigit = true
        }
        return sawDigit ? value : nil
    }

    /// The string value in `range` (quotes included), or nil when the value is not a string.
    func string(in range: Range<Int>) -> String? {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\"") else { return nil }
        return decodeString(range)
    }

    /// How many embedding inputs an `input` value holds; nil for a plain string (one input).
    func arrayInputCount(_ range: Range<Int>) -> Int? {
        guard bytes[range.lowerBound] == UInt8(ascii: "[") else { return nil }
        var inner = JSONScanner(bytes: bytes, position: range.lowerBound + 1)
        inner.skipWhitespace()
        guard inner.position < range.upperBound - 1 else { return 0 }
        // A flat list of numbers is one input given as token ids.
        let first = bytes[inner.position]
        if first == UInt8(ascii: "-") || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) {
            return 1
        }
        var count = 0
        while inner.position < range.upperBound - 1 {
            inner.skipWhitespace()
            guard inner.skipValue() else { break }
            count += 1
            inner.skipWhitespace()
            guard inner.position < bytes.count, bytes[inner.position] == UInt8(ascii: ",") else { break }
            inner.position += 1
        }
        return count
    }

    /// Decodes a quoted JSON string; the fast path copies bytes when there is no escape.
    func decodeString(_ range: Range<Int>) -> String {
        let content = (range.lowerBound + 1)..<(range.upperBound - 1)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[content])
        guard slice.contains(UInt8(ascii: "\\")) else {
            return String(decoding: slice, as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(slice.count)
        var index = 0
        while index < slice.count {
            let byte = slice[index]
            guard byte == UInt8(ascii: "\\"), index + 1 < slice.count else {
                out.append(byte); index += 1; continue
            }
            let escaped = slice[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard index + 4 <= slice.count,
                      let code = UInt32(String(decoding: UnsafeRawBufferPointer(rebasing: slice[index..<index + 4]),
                                               as: UTF8.self), radix: 16)
                else { continue }
                index += 4
                // Surrogate pairs are not joined: a fake only echoes model names.
                let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: out.append(escaped)  // \" \\ \/
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

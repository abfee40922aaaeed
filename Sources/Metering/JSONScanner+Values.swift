/// Turning scanned tokens into values: key comparison, string decoding, exact integers.
extension JSONScanner {
    /// Whether a key equals an ASCII name; escaped keys are decoded first (rare).
    @inline(__always)
    func key(_ token: StringToken, is name: StaticString) -> Bool {
        let length = token.end - token.start
        guard length == name.utf8CodeUnitCount || token.hasEscapes else { return false }
        if token.hasEscapes { return string(token) == name.description }
        let literal = name.utf8Start
        for offset in 0..<length where bytes[token.start + offset] != literal[offset] { return false }
        return true
    }

    /// Decodes a string token (escapes, surrogate pairs; unpaired surrogates become U+FFFD).
    func string(_ token: StringToken) -> String {
        let raw = UnsafeRawBufferPointer(rebasing: bytes[token.start..<token.end])
        guard token.hasEscapes else { return String(decoding: raw, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = token.start
        func hex4(_ at: Int) -> UInt32 {
            var value: UInt32 = 0
            for k in 0..<4 { value = value << 4 | UInt32(JSONScanner.hexValue(bytes[at + k]) ?? 0) }
            return value
        }
        while i < token.end {
            let byte = bytes[i]
            guard byte == UInt8(ascii: "\\") else { out.append(byte); i += 1; continue }
            let escape = bytes[i + 1]
            i += 2
            switch escape {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hex4(i)
                i += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    if i + 6 <= token.end, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u"),
                       case let low = hex4(i + 2), (0xDC00...0xDFFF).contains(low) {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    } else {
                        scalar = 0xFFFD
                    }
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    scalar = 0xFFFD
                }
                UTF8.encode(Unicode.Scalar(scalar) ?? "\u{FFFD}") { out.append($0) }
            default: out.append(escape)  // '"', '\\', '/'
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// What a number is, as far as a count of tokens is concerned.
    enum IntegerReading: Equatable {
        case value(Int)
        case negative
        case fractional
        case tooLarge
    }

    /// Reads a number as an integer in `0...limit`, in any JSON notation whose value is
    /// integral (`1000`, `1e3`, `1000.0`, `-0`); exact, no floating point.
    func integer(_ token: NumberToken, limit: Int) -> IntegerReading {
        var i = token.start
        let negative = bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        let intStart = i
        while i < token.end, JSONScanner.isDigit(bytes[i]) { i += 1 }
        let intCount = i - intStart
        var fracStart = i, fracCount = 0
        if i < token.end, bytes[i] == UInt8(ascii: ".") {
            i += 1
            fracStart = i
            while i < token.end, JSONScanner.isDigit(bytes[i]) { i += 1 }
            fracCount = i - fracStart
        }
        var exponent = 0
        if i < token.end {  // 'e' or 'E', optional sign, digits (grammar checked by scanNumber)
            i += 1
            var expNegative = false
            if bytes[i] == UInt8(ascii: "-") { expNegative = true; i += 1 } else if bytes[i] == UInt8(ascii: "+") { i += 1 }
            while i < token.end {
                exponent = min(exponent * 10 + Int(bytes[i] &- UInt8(ascii: "0")), 1_000_000)
                i += 1
            }
            if expNegative { exponent = -exponent }
        }
        // Mantissa digits as one sequence: integer part then fraction part.
        func digit(_ k: Int) -> Int {
            Int((k < intCount ? bytes[intStart + k] : bytes[fracStart + k - intCount]) &- UInt8(ascii: "0"))
        }
        let count = intCount + fracCount
        var first = 0
        while first < count, digit(first) == 0 { first += 1 }
        if first == count { return .value(0) }
        if negative { return .negative }
        var last = count - 1
        while digit(last) == 0 { last -= 1 }
        let scale = exponent - fracCount + (count - 1 - last)
        if scale < 0 { return .fractional }
        if last - first + 1 + scale > 18 { return .tooLarge }
        var value = 0
        for k in first...last { value = value * 10 + digit(k) }
        for _ in 0..<scale { value *= 10 }
        return value <= limit ? .value(value) : .tooLarge
    }
}

extension JSONScanner {
    /// The billed tools in the `tools` list at the cursor: whether a web search tool is there (an
    /// object whose `type` starts with `web_search`), whether one is OpenAI's older preview tool
    /// (`web_search_preview…`), whether one is not, the sum of their `max_uses` (nil when one
    /// has none, or not a whole number), and whether the file search (`type` `file_search`) and
    /// image generation tools are (`image_generation`). Other tools and members are skipped.
    /// Leaves the cursor after the list.
    mutating func readBilledTools() throws(JSONSyntaxError)
        -> (webSearch: Bool, preview: Bool, current: Bool, maxUses: Int?, fileSearch: Bool, imageGeneration: Bool) {
        var present = false
        var preview = false
        var current = false
        var files = false
        var images = false
        var maxUses: Int? = 0
        try readArray { (s: inout JSONScanner) throws(JSONSyntaxError) -> Bool in
            guard s.current == UInt8(ascii: "{") else { return false }
            var search = false
            var isPreview = false
            var uses: Int?
            try s.readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
                if s.key(key, is: "type"), s.current == UInt8(ascii: "\"") {
                    let type = try s.scanString()
                    let prefix: StaticString = "web_search", previewPrefix: StaticString = "web_search_preview"
                    func starts(_ p: StaticString) -> Bool {
                        type.hasEscapes ? s.string(type).hasPrefix(p.description)
                            : type.end - type.start >= p.utf8CodeUnitCount && StreamReading.matches(s.bytes, at: type.start, p)
                    }
                    search = starts(prefix)
                    isPreview = search && starts(previewPrefix)
                    images = images || s.key(type, is: "image_generation")
                    files = files || s.key(type, is: "file_search")
                } else if s.key(key, is: "max_uses"), let c = s.current, JSONScanner.isDigit(c) {
                    if case .value(let n) = s.integer(try s.scanNumber(), limit: 1_000_000) { uses = n }
                } else {
                    return false
                }
                return true
            }
            if search {
                present = true
                if isPreview { preview = true } else { current = true }
                maxUses = maxUses.flatMap { total in uses.map { total + $0 } }
            }
            return true
        }
        return (present, preview, current, present ? maxUses : nil, files, images)
    }
}

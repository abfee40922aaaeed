/// Why a byte scan rejected a JSON text; `offset` is the 0-based byte where it went wrong.
struct JSONSyntaxError: Error, Sendable, Hashable {
    var offset: Int
    var expected: String

    var message: String { "malformed JSON at byte \(offset): \(expected)" }
}

/// A validating, allocation-free cursor over JSON bytes (RFC 8259 grammar).
///
/// Why not Foundation: the request and response paths only need a handful of fields, and a
/// byte scan is one to two orders of magnitude cheaper than decoding the whole document.
/// Values the caller does not want are skipped with full grammar validation; strings are
/// only decoded when asked for. UTF-8 inside strings is not validated (decoding replaces
/// bad sequences), control characters are rejected.
struct JSONScanner {
    let bytes: UnsafeRawBufferPointer
    var index: Int
    /// Base64 images and audio met as skipped string values (`InlineMedia`), for the prompt estimate.
    var inlineMedia = InlineMedia()
    /// The name of the member whose value `skipValue` is at (what `InlineMedia` asks).
    private var memberName = StringToken(start: 0, end: 0, hasEscapes: false)
    /// `readObject` / `readArray` calls open: a value `skipValue` starts at while one (the body's
    /// own object) is open lies where `MediaPath` counts from the body's top.
    private var openReads = 0
    /// A skipped object had a `cache_control` member (Anthropic prompt caching on a block).
    private(set) var sawCacheControl = false

    init(_ bytes: UnsafeRawBufferPointer, index: Int = 0) {
        self.bytes = bytes
        self.index = index
    }

    /// A string's content, between its quotes; decode with `string(_:)`.
    struct StringToken {
        var start: Int
        var end: Int
        var hasEscapes: Bool
    }

    /// A number's text, validated against the JSON grammar.
    struct NumberToken {
        var start: Int
        var end: Int
    }

    var isAtEnd: Bool { index >= bytes.count }

    var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    @inline(__always)
    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    @inline(never)
    func failure(_ expected: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: index, expected: index >= bytes.count ? "unexpected end of input" : expected)
    }

    @inline(__always)
    mutating func expect(_ byte: UInt8, _ expected: String) throws(JSONSyntaxError) {
        guard index < bytes.count, bytes[index] == byte else { throw failure(expected) }
        index += 1
    }

    // MARK: Scalars

    /// Scans a string starting at its opening quote.
    mutating func scanString() throws(JSONSyntaxError) -> StringToken {
        try expect(UInt8(ascii: "\""), "expected '\"'")
        let start = index
        var hasEscapes = false
        while true {
            index = ByteSearch.stringSpecial(bytes, from: index)
            guard index < bytes.count else { throw failure("") }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return StringToken(start: start, end: index - 1, hasEscapes: hasEscapes)
            }
            if byte >= 0x80 {
                guard let length = JSONScanner.utf8SequenceLength(bytes, at: index) else {
                    throw failure("invalid UTF-8 in string")
                }
                index += length
                continue
            }
            guard byte == UInt8(ascii: "\\") else { throw failure("control character in string") }
            hasEscapes = true
            index += 1
            guard index < bytes.count else { throw failure("") }
            switch bytes[index] {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                 UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                index += 1
            case UInt8(ascii: "u"):
                index += 1
                for _ in 0..<4 {
                    guard index < bytes.count else { throw failure("") }
                    guard JSONScanner.hexValue(bytes[index]) != nil else {
                        throw failure("expected a hex digit in \\u escape")
                    }
                    index += 1
                }
            default:
                throw failure("invalid escape in string")
            }
        }
    }

    /// Scans a number per the JSON grammar (no leading zeros, no bare '.', no '+').
    mutating func scanNumber() throws(JSONSyntaxError) -> NumberToken {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        guard let first = current, JSONScanner.isDigit(first) else { throw failure("expected a digit") }
        index += 1
        if first == UInt8(ascii: "0") {
            if let next = current, JSONScanner.isDigit(next) { throw failure("leading zeros are not allowed") }
        } else {
            skipDigits()
        }
        if current == UInt8(ascii: ".") {
            index += 1
            guard let d = current, JSONScanner.isDigit(d) else { throw failure("expected a digit after '.'") }
            skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard let d = current, JSONScanner.isDigit(d) else { throw failure("expected a digit in exponent") }
            skipDigits()
        }
        return NumberToken(start: start, end: index)
    }

    private mutating func skipDigits() {
        while index < bytes.count, JSONScanner.isDigit(bytes[index]) { index += 1 }
    }

    /// Scans `true`, `false` or `null` and returns which.
    mutating func scanLiteral() throws(JSONSyntaxError) -> Literal {
        let literal: Literal
        let text: StaticString
        switch current {
        case UInt8(ascii: "t"): (literal, text) = (.true, "true")
        case UInt8(ascii: "f"): (literal, text) = (.false, "false")
        case UInt8(ascii: "n"): (literal, text) = (.null, "null")
        default: throw failure("expected a value")
        }
        let start = text.utf8Start
        for offset in 0..<text.utf8CodeUnitCount {
            guard index < bytes.count, bytes[index] == start[offset] else { throw failure("invalid literal") }
            index += 1
        }
        return literal
    }

    enum Literal { case `true`, `false`, null }

    // MARK: Containers

    /// Skips one value of any kind, validating it. Iterative, so nesting depth costs one bit a
    /// level instead of a stack frame (a hostile body cannot overflow the stack).
    mutating func skipValue() throws(JSONSyntaxError) {
        var stack = ContainerStack()
        // Where the scan is, by the members that opened its containers: inline media counts only
        // where the APIs put it (`InlineMedia`).
        var path = MediaPath(fromTop: openReads == 1)
        while true {
            // A value is expected here.
            skipWhitespace()
            guard index < bytes.count else { throw failure("") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                skipWhitespace()
                if current == UInt8(ascii: "}") {
                    index += 1
                } else {
                    path.enter(level: stack.depth, member: stack.isEmpty || stack.topIsObject ? memberName : nil, in: bytes)
                    stack.push(isObject: true)
                    try scanMemberName()
                    continue
                }
            case UInt8(ascii: "["):
                index += 1
                skipWhitespace()
                if current == UInt8(ascii: "]") {
                    index += 1
                } else {
                    path.enter(level: stack.depth, member: stack.isEmpty || stack.topIsObject ? memberName : nil, in: bytes)
                    stack.push(isObject: false)
                    continue
                }
            case UInt8(ascii: "\""):
                inlineMedia.note(try scanString(), member: memberName, at: path,
                                 depth: stack.depth, inObject: stack.isEmpty || stack.topIsObject, in: bytes)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try scanNumber()
            default: _ = try scanLiteral()
            }
            // A value just ended: close containers until one wants another member.
            closing: while !stack.isEmpty {
                skipWhitespace()
                guard index < bytes.count else { throw failure("") }
                let byte = bytes[index]
                if stack.topIsObject {
                    if byte == UInt8(ascii: ",") {
                        index += 1
                        skipWhitespace()
                        try scanMemberName()
                        break closing
                    } else if byte == UInt8(ascii: "}") {
                        index += 1
                        inlineMedia.close(depth: stack.depth)
                        path.leave(level: stack.depth - 1)
                        stack.pop()
                    } else {
                        throw failure("expected ',' or '}'")
                    }
                } else {
                    if byte == UInt8(ascii: ",") {
                        index += 1
                        break closing
                    } else if byte == UInt8(ascii: "]") {
                        index += 1
                        inlineMedia.close(depth: stack.depth)
                        path.leave(level: stack.depth - 1)
                        stack.pop()
                    } else {
                        throw failure("expected ',' or ']'")
                    }
                }
            }
            if stack.isEmpty { return }
        }
    }

    /// `"name"` then `:`; leaves the cursor at the member's value.
    private mutating func scanMemberName() throws(JSONSyntaxError) {
        guard current == UInt8(ascii: "\"") else { throw failure("expected a member name in double quotes") }
        enterMember(try scanString())
        skipWhitespace()
        try expect(UInt8(ascii: ":"), "expected ':'")
    }

    /// The member whose value comes next: what `InlineMedia` judges its strings by, and a
    /// `cache_control` noted.
    private mutating func enterMember(_ name: StringToken) {
        memberName = name
        if name.end - name.start == 13, !name.hasEscapes, StreamReading.matches(bytes, at: name.start, "cache_control") {
            sawCacheControl = true
        }
    }

    /// Walks the members of the object at the cursor. For each, `member` is called with the
    /// cursor at the value; it either consumes the value and returns true, or returns false to
    /// have it skipped. Leaves the cursor after the closing brace.
    mutating func readObject(
        _ member: (inout JSONScanner, StringToken) throws(JSONSyntaxError) -> Bool
    ) throws(JSONSyntaxError) {
        skipWhitespace()
        try expect(UInt8(ascii: "{"), "expected '{'")
        openReads += 1
        defer { openReads -= 1 }
        skipWhitespace()
        if current == UInt8(ascii: "}") { index += 1; return }
        while true {
            guard current == UInt8(ascii: "\"") else { throw failure("expected a member name in double quotes") }
            let key = try scanString()
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "expected ':'")
            skipWhitespace()
            // A value skipped here is judged by its own member's name, as inside `skipValue`.
            enterMember(key)
            if try !member(&self, key) { try skipValue() }
            skipWhitespace()
            guard index < bytes.count else { throw failure("") }
            if bytes[index] == UInt8(ascii: "}") { index += 1; return }
            try expect(UInt8(ascii: ","), "expected ',' or '}'")
            skipWhitespace()
        }
    }

    /// Walks the elements of the array at the cursor. For each, `element` is called with the
    /// cursor at it; it either consumes it and returns true, or returns false to have it skipped.
    /// Leaves the cursor after the closing bracket.
    mutating func readArray(_ element: (inout JSONScanner) throws(JSONSyntaxError) -> Bool) throws(JSONSyntaxError) {
        skipWhitespace()
        try expect(UInt8(ascii: "["), "expected '['")
        openReads += 1
        defer { openReads -= 1 }
        skipWhitespace()
        if current == UInt8(ascii: "]") { index += 1; return }
        while true {
            skipWhitespace()
            memberName = StringToken(start: 0, end: 0, hasEscapes: false)  // an element has none
            if try !element(&self) { try skipValue() }
            skipWhitespace()
            guard index < bytes.count else { throw failure("") }
            if bytes[index] == UInt8(ascii: "]") { index += 1; return }
            try expect(UInt8(ascii: ","), "expected ',' or ']'")
        }
    }

    /// The prompts in the list at the cursor (legacy completions' `prompt`): one per element,
    /// but a list of numbers (token ids) is one prompt. Leaves the cursor after the list.
    mutating func countPrompts() throws(JSONSyntaxError) -> Int {
        var elements = 0
        var tokenIDs = false
        try readArray { (s: inout JSONScanner) throws(JSONSyntaxError) -> Bool in
            if elements == 0, let c = s.current, c == UInt8(ascii: "-") || JSONScanner.isDigit(c) { tokenIDs = true }
            elements += 1
            return false
        }
        return tokenIDs ? 1 : elements
    }

    /// Whether the cursor is at an empty array (`[` `]`); consumes it if so.
    mutating func skipEmptyArray() -> Bool {
        let saved = index
        guard current == UInt8(ascii: "[") else { return false }
        index += 1
        skipWhitespace()
        if current == UInt8(ascii: "]") { index += 1; return true }
        index = saved
        return false
    }

    /// Consumes `null` if it is at the cursor.
    mutating func skipNull() -> Bool {
        guard index + 4 <= bytes.count, bytes[index] == UInt8(ascii: "n"), bytes[index + 1] == UInt8(ascii: "u"),
              bytes[index + 2] == UInt8(ascii: "l"), bytes[index + 3] == UInt8(ascii: "l") else { return false }
        index += 4
        return true
    }

    /// Scans one complete top-level value and rejects anything but whitespace after it.
    mutating func expectEnd() throws(JSONSyntaxError) {
        skipWhitespace()
        guard index == bytes.count else { throw failure("unexpected content after the top-level value") }
    }

    /// Length of the well-formed UTF-8 sequence at `i` (RFC 3629: no overlong forms, no
    /// surrogates, nothing past U+10FFFF), or nil.
    static func utf8SequenceLength(_ bytes: UnsafeRawBufferPointer, at i: Int) -> Int? {
        let lead = bytes[i]
        let length: Int
        var low: UInt8 = 0x80, high: UInt8 = 0xBF  // allowed range of the second byte
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: return nil
        }
        guard i + length <= bytes.count, (low...high).contains(bytes[i + 1]) else { return nil }
        for k in 2..<length where bytes[i + k] & 0xC0 != 0x80 { return nil }
        return length
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// One bit per open container (object or array); spills to the heap past 64 levels only.
private struct ContainerStack {
    private var inline: UInt64 = 0
    private var spill: [UInt64] = []
    private(set) var depth = 0

    var isEmpty: Bool { depth == 0 }

    var topIsObject: Bool {
        let level = depth - 1
        let word = level < 64 ? inline : spill[level / 64 - 1]
        return word & (1 << UInt64(level % 64)) != 0
    }

    mutating func push(isObject: Bool) {
        let level = depth
        let bit: UInt64 = 1 << UInt64(level % 64)
        if level < 64 {
            inline = isObject ? inline | bit : inline & ~bit
        } else {
            if level % 64 == 0 { spill.append(0) }
            let w = level / 64 - 1
            spill[w] = isObject ? spill[w] | bit : spill[w] & ~bit
        }
        depth += 1
    }

    mutating func pop() {
        depth -= 1
        if depth >= 64 && depth % 64 == 0 { spill.removeLast() }
    }
}

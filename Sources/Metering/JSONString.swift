/// Writes JSON string literals for the few JSON texts tokenctl composes itself (error bodies,
/// model lists, reports, the fake provider's answers); one escaping rule for all of them.
public enum JSONString {
    /// `text` as a quoted JSON string literal (RFC 8259 escaping).
    public static func literal(_ text: String) -> String {
        "\"" + escaped(text) + "\""
    }

    /// `text` as the inside of a JSON string literal (quotes not included). Text that needs no
    /// escaping, the common case, is returned as it is.
    public static func escaped(_ text: String) -> String {
        let needsEscape = text.utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
        guard needsEscape else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

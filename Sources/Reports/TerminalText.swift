/// Names in reports come from callers: a service key's end users, the model a refused call
/// asked for. Printed raw, an escape sequence would repaint finance's terminal and a line break
/// forge a row; so control characters (C0, DEL, C1), line and paragraph separators and format
/// characters (the bidi overrides that reorder what is shown, zero-width ones that hide) are
/// written as visible `\u{…}` escapes.
public enum TerminalText {
    public static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: hidden) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if hidden(scalar) {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func hidden(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029: return true
        case 0x20...0x7E: return false
        // Format characters: the bidi overrides, and invisible ones (zero-width space) that make
        // two names look alike.
        default: return scalar.properties.generalCategory == .format
        }
    }
}

import Ledger

/// Names in reports come from callers: a service key's end users, the model a refused call
/// asked for. Printed raw, an escape sequence would repaint finance's terminal and a line break
/// forge a row; so the characters `ReportDimension.hides` names (the ones no name may carry)
/// are written as visible `\u{…}` escapes.
public enum TerminalText {
    public static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: ReportDimension.hides) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if ReportDimension.hides(scalar) {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

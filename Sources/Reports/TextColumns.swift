/// Aligned plain-text columns for terminals: the first `labelColumns` columns left-aligned (names),
/// the rest right-aligned (figures), two spaces apart, no trailing spaces. One layout for the
/// report table, the policy simulation and the CLI's listings.
public struct TextColumns: Sendable {
    public let widths: [Int]
    public let labelColumns: Int

    /// Columns wide enough for every line given.
    public init(fitting lines: [[String]], labelColumns: Int) {
        var widths: [Int] = []
        for line in lines {
            for (index, text) in line.enumerated() {
                if index == widths.count { widths.append(0) }
                widths[index] = max(widths[index], TerminalText.printable(text).count)
            }
        }
        self.widths = widths
        self.labelColumns = labelColumns
    }

    public func line(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in
            let text = TerminalText.printable(cell)
            let padding = String(repeating: " ", count: max(0, widths[index] - text.count))
            return index < labelColumns ? text + padding : padding + text
        }
        .joined(separator: "  ")
        .trailingSpacesRemoved
    }

    /// A rule of dashes under every column.
    public var rule: String { widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") }

    /// A header line and the rows, each ending in a newline.
    public static func render(header: [String], rows: [[String]], labelColumns: Int) -> String {
        let columns = TextColumns(fitting: [header] + rows, labelColumns: labelColumns)
        return ([header] + rows).map { columns.line($0) + "\n" }.joined()
    }
}

private extension String {
    var trailingSpacesRemoved: String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}

import Ledger
import Metering
import Reports
import Testing

/// Names in the ledger come from callers (the model a refused call asked for; an end user, before
/// such names were checked): no report format may let one repaint a terminal, forge a row, run
/// script in a Markdown viewer or a formula in a spreadsheet.
@Suite("hostile names in reports")
struct HostileNamesTests {
    static let model = "gpt-\u{1b}[2J\u{1b}[1;31mTOTAL PAID\u{1b}[0m\n<script>alert(1)</script>"
    static let user = "=HYPERLINK(\"http://x\")"
    static let bidi = "alice\u{202e}dlrow"

    func reader(_ dir: TemporaryDirectory) throws -> LedgerReader {
        let names = [(Self.user, Self.model), (Self.bidi, "gpt-4o-mini"), ("-2+3+cmd", "gpt-4o-mini"),
                     ("carol\u{200B}", "gpt-4o-mini"), ("-", "gpt-4o-mini")]
        return try ledger(with: names.enumerated().map { n, name in
            LedgerEntry(id: "c\(n)", requestId: "r\(n)", startedAt: day0 + Int64(n), endedAt: day0 + Int64(n) + 5,
                        user: name.0, team: nil, dialect: .openai, route: "chat.completions",
                        modelRequested: name.1, stream: false, status: 400, outcome: .refusedUnpriced,
                        usage: .zero, usageSource: .none, cost: .zero)
        }, in: dir)
    }

    @Test("table and markdown show control characters as escapes; markdown escapes '<'; CSV neutralises formulas")
    func everyFormat() throws {
        let dir = try TemporaryDirectory()
        let reader = try reader(dir)
        defer { reader.close() }
        let query = ReportQuery(since: 0, until: .max, groupBy: [.user, .model])
        let report = try reader.report(query)
        for format in [ReportFormat.table, .markdown] {
            let text = ReportRenderer.render(report, query: query, format: format)
            #expect(!text.unicodeScalars.contains { $0 == "\u{1b}" || $0 == "\u{202e}" }, "\(format)")
            #expect(text.contains(#"gpt-\u{1b}[2J"#) && text.contains(#"alice\u{202e}dlrow"#), "\(format)")
            #expect(text.contains(#"carol\u{200b}"#), "\(format)")  // not a second "carol" to the eye
            // The model's line break forges no line: each group is on one line.
            #expect(!text.split(separator: "\n").contains { $0.hasPrefix("<script>") }, "\(format)")
        }
        #expect(ReportRenderer.render(report, query: query, format: .markdown).contains("&lt;script>"))
        let csv = try parseCSV(ReportRenderer.render(report, query: query, format: .csv))
        let users = csv.dropFirst().map { $0[0] }
        #expect(users.contains("'" + Self.user) && users.contains("'-2+3+cmd") && users.contains("-"))
        #expect(!users.contains(Self.user))
        // The model keeps its bytes in CSV (quoted); only a formula's first character is guarded.
        #expect(csv.dropFirst().contains { $0[1] == Self.model })
    }
}

import Foundation
import Ledger
import Metering
import Reports
import Testing

@Suite("export")
struct LedgerExportTests {
    @Test("CSV and JSON lines carry every row with exact money, awkward names intact")
    func exportBothFormats() throws {
        let dir = try TemporaryDirectory()
        let reader = try populatedLedger(in: dir)
        defer { reader.close() }
        let entries = try reader.entries(since: 0, until: .max)
        var exact = Money.Total()
        for e in entries { exact.add(e.cost) }

        let csv = (LedgerExport.header(.csv) ?? "") + entries.map { LedgerExport.line($0, format: .csv) }.joined()
        let records = try parseCSV(csv)
        #expect(records.first == LedgerExport.fields)
        #expect(records.count == entries.count + 1)
        let costColumn = try #require(LedgerExport.fields.firstIndex(of: "cost_picodollars"))
        let userColumn = try #require(LedgerExport.fields.firstIndex(of: "user"))
        #expect(records.dropFirst().reduce(Int128(0)) { $0 + Int128($1[costColumn])! } == exact.picodollars)
        #expect(Set(records.dropFirst().map { $0[userColumn] }) == Set(entries.map { $0.user ?? "" }))

        #expect(LedgerExport.header(.jsonl) == nil)
        var sum = Int128(0)
        for entry in entries {
            let line = LedgerExport.line(entry, format: .jsonl)
            #expect(line.hasSuffix("\n") && !line.dropLast().contains("\n"))
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object.keys.sorted() == LedgerExport.fields.sorted())
            #expect(object["user"] as? String == entry.user)
            sum += Int128(try #require(object["cost_picodollars"] as? String))!
        }
        #expect(sum == exact.picodollars)
    }
}

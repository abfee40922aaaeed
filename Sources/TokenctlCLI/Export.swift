import ArgumentParser
import Foundation
import Ledger
import Reports

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stream raw ledger rows as CSV or JSON lines (one call per row, exact money).",
        discussion: "Rows are read one at a time, so any ledger size streams in constant memory. A progress line goes to stderr for exports longer than a second.")

    @OptionGroup var ledger: LedgerOptions

    @OptionGroup var span: PeriodOptions

    @Option(help: "csv or jsonl.")
    var format: LedgerExport.Format = .csv

    @Option(help: "Write to this file instead of stdout.")
    var out: String?

    func run() throws {
        let backend = try ledger.existing()
        // Export reads no policy: its dates are UTC unless --tz says otherwise.
        let (from, to) = try span.range(timeZone: try span.zone(default: ReportPeriod.utc))
        let output: FileHandle, target = out ?? "stdout"
        if let out {
            guard FileManager.default.createFile(atPath: out, contents: nil) else {
                throw CommandFailure("cannot write \(out)")
            }
            output = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        } else {
            output = FileHandle.standardOutput
        }
        let reader = try backend.openSource()
        defer { reader.close() }
        var buffer = LedgerExport.header(format) ?? ""
        var rows = 0
        let progress = ProgressLine("exported")
        try reader.forEachEntry(since: from, until: to) { entry in
            buffer += LedgerExport.line(entry, format: format)
            rows += 1
            if buffer.utf8.count >= 1 << 16 {
                try output.writeOrFail(Data(buffer.utf8), to: target)
                buffer.removeAll(keepingCapacity: true)
            }
            progress.update(rows)
        }
        try output.writeOrFail(Data(buffer.utf8), to: target)
        progress.finish(rows)
        if out != nil { try output.close() }
    }
}

extension LedgerExport.Format: ExpressibleByArgument {}

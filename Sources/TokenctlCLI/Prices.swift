import ArgumentParser
import Foundation
import Metering
import Reports

struct Prices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the price book: dollars per 1M tokens, effective dates and sources.",
        discussion: "With --model, shows the entry that model is charged by on the given day (default today, UTC), and the entries of its pattern for a service tier or a long prompt.")

    @Option(help: "Directory of policy files.")
    var policies: String = "policies"

    @Option(help: "Show only the entry in force for this model.")
    var model: String?

    @Option(help: "The day for --model, YYYY-MM-DD (UTC).")
    var on: String?

    func validate() throws {
        if let on {
            guard model != nil else { throw ValidationError("--on needs --model (it picks the entry a model is charged by on that day)") }
            guard Day(on) != nil else { throw ValidationError("--on must be a day, YYYY-MM-DD (got \(on))") }
        }
    }

    func run() throws {
        let book = try loadPolicyOrExit(policies).prices
        var entries = book.entries
        if let model {
            let day = on.flatMap(Day.init) ?? Day.today()
            guard let entry = book.price(for: model, on: day) else {
                FileHandle.standardError.write(Data("no price for \(model) on \(day)\n".utf8))
                throw ExitCode(1)
            }
            entries = [entry] + book.variants(of: entry)
        }
        // Audio prices only when some entry has one (most books price no audio model).
        let audio = entries.contains { $0.audioInput != nil || $0.audioOutput != nil }
        let usOnlyColumn = entries.contains { $0.usOnlyMultiple != nil }
        // A tier's or a long prompt's entry without its own multiple or search fees takes its
        // standard entry's in force on the call's day: shown here, today's.
        func standard(of e: ModelPrice) -> ModelPrice? {
            book.entries.filter { !$0.isVariant && $0.model == e.model }.max { $0.effectiveFrom < $1.effectiveFrom }
        }
        func usOnlyMultiple(_ e: ModelPrice) -> String {
            if let own = e.usOnlyMultiple { return "x\(own)" }
            return standard(of: e)?.usOnlyMultiple.map { "x\($0) (standard's)" } ?? "-"
        }
        let rows = entries.map { entry in
            let e = standard(of: entry).map(entry.withUnnamedFees(of:)) ?? entry
            let fixed = [e.model.text, Self.applies(e), e.effectiveFrom.description, Self.perMillion(e.input),
                         Self.perMillion(e.cachedInput), Self.perMillion(e.cacheWrite), Self.perMillion(e.cacheWrite1h),
                         Self.perMillion(e.output)]
            let searches = [Self.perThousand(e.webSearch) + (e.webSearchPreview.map { " (preview " + Self.perThousand($0) + ")" } ?? ""),
                            Self.perThousand(e.fileSearch)]
            return fixed + (audio ? [Self.audio(e.audioInput), Self.audio(e.audioOutput)] : []) + searches
                + (usOnlyColumn ? [usOnlyMultiple(e)] : []) + [e.source]
        }
        print(TextColumns.render(
            header: ["MODEL", "FOR", "FROM", "INPUT/1M", "CACHED/1M", "CACHE WRITE/1M", "1H WRITE/1M", "OUTPUT/1M"]
                + (audio ? ["AUDIO IN/1M", "AUDIO OUT/1M"] : []) + ["SEARCH/1K", "FILE SEARCH/1K"] + (usOnlyColumn ? ["US-ONLY"] : []) + ["SOURCE"],
            rows: rows, labelColumns: 11 + (audio ? 2 : 0) + (usOnlyColumn ? 1 : 0)), terminator: "")
    }

    /// An audio price, or `as text` when the entry has none (audio tokens pay the text price).
    static func audio(_ price: Money?) -> String { price.map(perMillion) ?? "as text" }

    /// Which calls an entry prices: every call (`standard`), a tier's, or those over a prompt size.
    static func applies(_ e: ModelPrice) -> String {
        let parts = [e.tier.map { "tier \($0)" }, e.aboveInputTokens.map { "prompt > \($0)" }].compactMap { $0 }
        return parts.isEmpty ? "standard" : parts.joined(separator: ", ")
    }

    /// A per-call fee back as dollars per 1,000 calls: pd × 10^3 / 10^12 = dollars × 10^-9.
    static func perThousand(_ perCall: Money) -> String { scaled(perCall, by: 1_000) }

    /// A per-token price back as dollars per 1M tokens: pd per token × 10^6 / 10^12 = dollars × 10^-6.
    static func perMillion(_ perToken: Money) -> String { scaled(perToken, by: 1_000_000) }

    /// `amount` × `factor` in dollars; a product past what one `Money` holds (an absurd price)
    /// is shown as such rather than trapping.
    private static func scaled(_ amount: Money, by factor: Int64) -> String {
        let (product, overflow) = amount.picodollars.multipliedReportingOverflow(by: factor)
        return overflow ? "over $9.2M" : "$" + Money(picodollars: product).formatted(decimals: 6)
    }
}

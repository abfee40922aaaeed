/// What one token of each kind costs for a model from a given day, in pico-dollars per token.
public struct ModelPrice: Sendable, Hashable, Codable {
    /// Its fields sit in one box its copies share (`SharedFields`): a price is copied a dozen
    /// times per call (found, tiered, settled, recorded), each copy retaining its strings.
    private var shared: SharedFields<Fields>

    public var model: ModelPattern { shared.box.fields.model }
    public var effectiveFrom: Day { shared.box.fields.effectiveFrom }
    public var input: Money { get { shared.box.fields.input } set { shared.update { $0.input = newValue } } }
    public var cachedInput: Money { get { shared.box.fields.cachedInput } set { shared.update { $0.cachedInput = newValue } } }
    /// A 5-minute prompt-cache write (Anthropic), or any other provider's.
    public var cacheWrite: Money { get { shared.box.fields.cacheWrite } set { shared.update { $0.cacheWrite = newValue } } }
    /// A 1-hour prompt-cache write (Anthropic: twice the input price).
    public var cacheWrite1h: Money { get { shared.box.fields.cacheWrite1h } set { shared.update { $0.cacheWrite1h = newValue } } }
    public var output: Money { get { shared.box.fields.output } set { shared.update { $0.output = newValue } } }
    /// One search of a server-side web search tool (a fee per search, not per token).
    public var webSearch: Money { get { shared.box.fields.webSearch } set { shared.update { $0.webSearch = newValue } } }
    /// One call of the Responses API's file search tool (a fee per call).
    public var fileSearch: Money { get { shared.box.fields.fileSearch } set { shared.update { $0.fileSearch = newValue } } }
    /// One search of OpenAI's older `web_search_preview` tool, where it has a fee of its own ($25
    /// against the current tool's $10 per 1,000 on gpt-4o and gpt-4.1); nil: `webSearch`.
    public var webSearchPreview: Money? {
        get { shared.box.fields.webSearchPreview }
        set { shared.update { $0.webSearchPreview = newValue } }
    }
    /// The search fees a tier's or a long prompt's entry does not name: the standard entry's in
    /// force on the call's day apply (`Pricing.price(tier:promptTokens:)`), as its US-only
    /// multiple does.
    public var unnamedFees: SearchFees { get { shared.box.fields.unnamedFees } set { shared.update { $0.unnamedFees = newValue } } }
    /// An audio input or output token (OpenAI's audio models); nil: the text price.
    public var audioInput: Money? { get { shared.box.fields.audioInput } set { shared.update { $0.audioInput = newValue } } }
    public var audioOutput: Money? { get { shared.box.fields.audioOutput } set { shared.update { $0.audioOutput = newValue } } }
    /// Where the price was taken from (a URL or note); shown by `tokenctl prices`.
    public var source: String { get { shared.box.fields.source } set { shared.update { $0.source = newValue } } }
    /// The service tier this price is for (OpenAI `priority` or `flex`, Anthropic fast mode
    /// `fast`); nil for the standard one.
    public var tier: String? { shared.box.fields.tier }
    /// This price applies to calls whose prompt (input, cache reads and writes) is over this many
    /// tokens (Anthropic's long-context rates, over 200K, apply to every token of such a call).
    public var aboveInputTokens: Int? { shared.box.fields.aboveInputTokens }
    /// What a call run in the US only (Anthropic's `inference_geo: "us"`) pays: this multiple of
    /// every token price (`inUSOnly`); nil: none of its own (a tier's or a long prompt's entry
    /// then takes its standard entry's, `Pricing.price(tier:promptTokens:usOnly:)`).
    public var usOnlyMultiple: PriceMultiplier? { shared.box.fields.usOnlyMultiple }
    /// This is the price of calls run in the US only: an entry times a US-only multiple.
    public var runsInUSOnly: Bool { shared.box.fields.runsInUSOnly }

    /// Stable identifier stored in ledger rows: `<model pattern>@<effective day>`, with ` <tier>`
    /// and ` above-<tokens>` after the pattern for a price that applies to some calls only
    /// (`gpt-5 priority@2025-08-07`: a pattern has no spaces, and a build that knows no variants
    /// still reads the id). A US-only price adds `us-only` to the tier's word (`fast+us-only`, or
    /// the word alone), which a build that knows no such prices reads as a tier's name. Kept
    /// rather than formatted on use: every call's journal record and ledger row carry it.
    public var id: String { shared.box.fields.id }

    /// `cacheWrite1h` defaults to twice `input`, Anthropic's rule for its 1-hour cache;
    /// `webSearch` to `defaultWebSearch`, `fileSearch` to `defaultFileSearch`.
    public init(model: ModelPattern, effectiveFrom: Day, input: Money, cachedInput: Money,
                cacheWrite: Money, cacheWrite1h: Money? = nil, output: Money, webSearch: Money? = nil,
                fileSearch: Money? = nil, webSearchPreview: Money? = nil,
                audioInput: Money? = nil, audioOutput: Money? = nil,
                source: String = "", tier: String? = nil, aboveInputTokens: Int? = nil,
                usOnlyMultiple: PriceMultiplier? = nil, runsInUSOnly: Bool = false) {
        shared = SharedFields(Fields(
            model: model, effectiveFrom: effectiveFrom, input: input, cachedInput: cachedInput, cacheWrite: cacheWrite,
            cacheWrite1h: cacheWrite1h ?? Self.anthropicHourWrite(input: input), output: output,
            webSearch: webSearch ?? Self.defaultWebSearch, fileSearch: fileSearch ?? Self.defaultFileSearch,
            webSearchPreview: webSearchPreview, audioInput: audioInput, audioOutput: audioOutput, source: source,
            tier: tier, aboveInputTokens: aboveInputTokens, usOnlyMultiple: usOnlyMultiple, runsInUSOnly: runsInUSOnly,
            id: model.text + Self.variantWords(tier: tier, aboveInputTokens: aboveInputTokens, usOnly: runsInUSOnly)
                + "@\(effectiveFrom)"))
    }

    private struct Fields: Sendable, Hashable {
        let model: ModelPattern
        let effectiveFrom: Day
        var input: Money
        var cachedInput: Money
        var cacheWrite: Money
        var cacheWrite1h: Money
        var output: Money
        var webSearch: Money
        var fileSearch: Money
        var webSearchPreview: Money?
        var unnamedFees: SearchFees = []
        var audioInput: Money?
        var audioOutput: Money?
        var source: String
        let tier: String?
        let aboveInputTokens: Int?
        let usOnlyMultiple: PriceMultiplier?
        let runsInUSOnly: Bool
        let id: String
    }

    /// The word of `id` that says a price is US-only.
    public static let usOnlyWord = "us-only"

    /// What follows the pattern in `id`.
    private static func variantWords(tier: String?, aboveInputTokens: Int?, usOnly: Bool) -> String {
        let tierWord = usOnly ? (tier.map { $0 + "+" } ?? "") + usOnlyWord : tier
        return (tierWord.map { " \($0)" } ?? "") + (aboveInputTokens.map { " above-\($0)" } ?? "")
    }

    /// The price of this entry's calls when they run in the US only: every token price times
    /// `multiple` (the search fees are per search, not per token: unchanged).
    public func inUSOnly(times multiple: PriceMultiplier) -> ModelPrice {
        ModelPrice(model: model, effectiveFrom: effectiveFrom, input: multiple.applied(to: input),
                   cachedInput: multiple.applied(to: cachedInput), cacheWrite: multiple.applied(to: cacheWrite),
                   cacheWrite1h: multiple.applied(to: cacheWrite1h), output: multiple.applied(to: output),
                   webSearch: webSearch, fileSearch: fileSearch, webSearchPreview: webSearchPreview,
                   audioInput: audioInput.map(multiple.applied(to:)),
                   audioOutput: audioOutput.map(multiple.applied(to:)), source: source, tier: tier,
                   aboveInputTokens: aboveInputTokens, usOnlyMultiple: multiple, runsInUSOnly: true)
    }

    /// Whether this price is for some calls of its model only (a tier, a long prompt).
    public var isVariant: Bool { tier != nil || aboveInputTokens != nil }

    private enum CodingKeys: String, CodingKey {
        case model, effectiveFrom, input, cachedInput, cacheWrite, cacheWrite1h, output, webSearch, fileSearch, source, tier
        case webSearchPreview
        case aboveInputTokens, audioInput, audioOutput, usOnlyMultiple, runsInUSOnly
    }

    /// The keys in `CodingKeys`' order, optionals only when set: what the synthesised encoder
    /// wrote when the fields were stored properties.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(effectiveFrom, forKey: .effectiveFrom)
        try c.encode(input, forKey: .input)
        try c.encode(cachedInput, forKey: .cachedInput)
        try c.encode(cacheWrite, forKey: .cacheWrite)
        try c.encode(cacheWrite1h, forKey: .cacheWrite1h)
        try c.encode(output, forKey: .output)
        try c.encode(webSearch, forKey: .webSearch)
        try c.encode(fileSearch, forKey: .fileSearch)
        try c.encode(source, forKey: .source)
        try c.encodeIfPresent(tier, forKey: .tier)
        try c.encodeIfPresent(webSearchPreview, forKey: .webSearchPreview)
        try c.encodeIfPresent(aboveInputTokens, forKey: .aboveInputTokens)
        try c.encodeIfPresent(audioInput, forKey: .audioInput)
        try c.encodeIfPresent(audioOutput, forKey: .audioOutput)
        try c.encodeIfPresent(usOnlyMultiple, forKey: .usOnlyMultiple)
        try c.encode(runsInUSOnly, forKey: .runsInUSOnly)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(model: try c.decode(ModelPattern.self, forKey: .model),
                  effectiveFrom: try c.decode(Day.self, forKey: .effectiveFrom),
                  input: try c.decode(Money.self, forKey: .input),
                  cachedInput: try c.decode(Money.self, forKey: .cachedInput),
                  cacheWrite: try c.decode(Money.self, forKey: .cacheWrite),
                  cacheWrite1h: try c.decodeIfPresent(Money.self, forKey: .cacheWrite1h),
                  output: try c.decode(Money.self, forKey: .output),
                  webSearch: try c.decodeIfPresent(Money.self, forKey: .webSearch),
                  fileSearch: try c.decodeIfPresent(Money.self, forKey: .fileSearch),
                  webSearchPreview: try c.decodeIfPresent(Money.self, forKey: .webSearchPreview),
                  audioInput: try c.decodeIfPresent(Money.self, forKey: .audioInput),
                  audioOutput: try c.decodeIfPresent(Money.self, forKey: .audioOutput),
                  source: try c.decode(String.self, forKey: .source),
                  tier: try c.decodeIfPresent(String.self, forKey: .tier),
                  aboveInputTokens: try c.decodeIfPresent(Int.self, forKey: .aboveInputTokens),
                  usOnlyMultiple: try c.decodeIfPresent(PriceMultiplier.self, forKey: .usOnlyMultiple),
                  runsInUSOnly: try c.decodeIfPresent(Bool.self, forKey: .runsInUSOnly) ?? false)
    }

    /// Anthropic prices a 1-hour cache write at twice the input (a 5-minute one at 1.25 times).
    /// Saturates rather than overflows (an absurd input price still reads as the most there is).
    public static func anthropicHourWrite(input: Money) -> Money {
        let (double, overflow) = input.picodollars.multipliedReportingOverflow(by: 2)
        return Money(picodollars: overflow ? .max : double)
    }

    /// Anthropic's and OpenAI's fee for one web search: $10 per 1,000.
    public static let defaultWebSearch = Money(picodollars: 10_000_000_000)

    /// OpenAI's fee for one call of the Responses API's file search tool: $2.50 per 1,000.
    public static let defaultFileSearch = Money(picodollars: 2_500_000_000)

    /// Converts a fee per 1,000 calls, in dollars with at most six decimals, to an exact amount
    /// per call ($x per 1,000 = x * 10^12 / 10^3 pd). Nil if the text is not such a decimal.
    public static func perCall(fromPerThousand text: String) -> Money? {
        guard let picos = Money.parseDecimal(text, scale: 9) else { return nil }
        return Money(picodollars: picos)
    }

    /// Converts a price per one million tokens, in dollars with at most six decimals,
    /// to an exact per-token amount. Nil if the text is not such a decimal.
    public static func perToken(fromPerMillion text: String) -> Money? {
        // $x per 1M tokens = x * 10^12 / 10^6 pd per token = x * 10^6 pd per token.
        guard let picos = Money.parseDecimal(text, scale: 6) else { return nil }
        return Money(picodollars: picos)
    }

    /// What a reservation holds for a call of at most these tokens: their cost, or, past what
    /// one `Money` holds (an absurd output limit times `n`), the most there is, so a budget
    /// refuses the call rather than holding nothing.
    /// `kinds` says which dearer prices the call's tokens may be charged at.
    public func worstCase(inputTokens: Int, outputTokens: Int, kinds: TokenKinds = TokenKinds()) -> Money {
        var usage = Usage(inputTokens: inputTokens, outputTokens: outputTokens,
                          audioInputTokens: min(kinds.audioInputTokens, inputTokens))
        if kinds.writesPromptCache, max(cacheWrite, cacheWrite1h) > input {
            usage = Usage(cacheWriteTokens: inputTokens, cacheWrite1hTokens: cacheWrite1h > cacheWrite ? inputTokens : 0,
                          outputTokens: outputTokens)
        }
        if kinds.audioAnswer, (audioOutput ?? output) > output { usage.audioOutputTokens = outputTokens }
        (usage.webSearches, usage.fileSearches) = reservedSearches(kinds)
        return withSearchFee(for: kinds).cost(of: usage) ?? Money(picodollars: .max)
    }

    /// The searches of each kind a reservation holds: `kinds`' counts, but where one limit bounds
    /// both tools' calls together (`TokenKinds.sharedToolCalls`), that many in all, at the dearer
    /// of this price's two fees first.
    public func reservedSearches(_ kinds: TokenKinds) -> (web: Int, file: Int) {
        guard let limit = kinds.sharedToolCalls else { return (kinds.webSearches, kinds.fileSearches) }
        let fees = withSearchFee(for: kinds)
        if fees.webSearch >= fees.fileSearch {
            let web = min(kinds.webSearches, limit)
            return (web, min(kinds.fileSearches, limit - web))
        }
        let file = min(kinds.fileSearches, limit)
        return (min(kinds.webSearches, limit - file), file)
    }

    /// This price with the search fees it does not name (`unnamedFees`) taken from `standard`.
    public func withUnnamedFees(of standard: ModelPrice) -> ModelPrice {
        guard !unnamedFees.isEmpty else { return self }
        var filled = self
        if unnamedFees.contains(.webSearch) { filled.webSearch = standard.webSearch }
        if unnamedFees.contains(.webSearchPreview) { filled.webSearchPreview = standard.webSearchPreview }
        if unnamedFees.contains(.fileSearch) { filled.fileSearch = standard.fileSearch }
        filled.unnamedFees = []
        return filled
    }

    /// This price with the web search fee of the tools `kinds` names: the preview tool's where
    /// it has one of its own, the dearer of both when both tools are given (an answer does not
    /// say which searched). The price a row is charged and stores.
    public func withSearchFee(for kinds: TokenKinds) -> ModelPrice {
        guard kinds.previewWebSearch, let preview = webSearchPreview else { return self }
        var price = self
        price.webSearch = kinds.currentWebSearch ? max(webSearch, preview) : preview
        return price
    }

    /// Exact cost of the usage; nil if it would overflow one `Money` (over $9.2M in one call).
    public func cost(of usage: Usage) -> Money? {
        // Unrolled rather than looping over an array: this runs on every settled call.
        var total: Int64 = 0
        func add(_ tokens: Int, _ price: Money) -> Bool {
            guard tokens >= 0 else { return false }
            let (product, o1) = Int64(tokens).multipliedReportingOverflow(by: price.picodollars)
            let (sum, o2) = total.addingReportingOverflow(product)
            total = sum
            return !o1 && !o2
        }
        // The 1-hour writes are part of the writes, audio tokens part of the input and output
        // (clamped: a count above the whole is the whole).
        let hourWrites = min(max(usage.cacheWrite1hTokens, 0), max(usage.cacheWriteTokens, 0))
        let audioIn = min(max(usage.audioInputTokens, 0), max(usage.inputTokens, 0))
        let audioOut = min(max(usage.audioOutputTokens, 0), max(usage.outputTokens, 0))
        guard add(usage.inputTokens - audioIn, input), add(audioIn, audioInput ?? input),
              add(usage.cachedInputTokens, cachedInput),
              add(usage.cacheWriteTokens - hourWrites, cacheWrite), add(hourWrites, cacheWrite1h),
              add(usage.outputTokens - audioOut, output), add(audioOut, audioOutput ?? output),
              add(usage.webSearches, webSearch), add(usage.fileSearches, fileSearch) else { return nil }
        return Money(picodollars: total)
    }
}

/// All known prices; answers "what did this model cost per token on that day".
///
/// Looked up on every admitted call, so the entries are indexed once: exact names in a dictionary
/// (an exact name beats any glob), globs in the order the rule below prefers them. A lookup is then
/// one hash probe, or a scan of the globs that stops at the first match in force. Prices for
/// some calls only (`ModelPrice.isVariant`) are kept apart, by the pattern of the standard entry
/// they go with.
public struct PriceBook: Sendable, Hashable {
    public let entries: [ModelPrice]
    /// Per exact model name, its entries latest `effectiveFrom` first.
    private let exact: [String: [ModelPrice]]
    /// Glob entries, most specific first, then latest `effectiveFrom` first.
    private let globs: [ModelPrice]
    /// The variant prices; nil when there are none.
    private let variants: PriceVariants?

    public init(_ entries: [ModelPrice] = []) {
        self.entries = entries
        var exact: [String: [ModelPrice]] = [:]
        var globs: [(specificity: Int, entry: ModelPrice)] = []
        var variantEntries: [ModelPrice] = []
        for entry in entries {
            if entry.isVariant { variantEntries.append(entry) }
            else if entry.model.isExact { exact[entry.model.text, default: []].append(entry) }
            else { globs.append((entry.model.specificity, entry)) }
        }
        self.exact = exact.mapValues { $0.sorted { $0.effectiveFrom > $1.effectiveFrom } }
        self.globs = globs.sorted {
            $0.specificity != $1.specificity ? $0.specificity > $1.specificity : $0.entry.effectiveFrom > $1.entry.effectiveFrom
        }.map(\.entry)
        variants = variantEntries.isEmpty ? nil : PriceVariants(variantEntries)
    }

    /// The standard entry in force for `model` on `day`: among patterns that match, an exact
    /// name beats a glob and a more specific glob beats a looser one; then the latest
    /// `effectiveFrom <= day`.
    public func price(for model: String, on day: Day) -> ModelPrice? {
        if let named = exact[model], let entry = named.first(where: { $0.effectiveFrom <= day }) { return entry }
        return globs.first { $0.effectiveFrom <= day && $0.model.matches(model) }
    }

    /// Every price a call of `model` on `day` may be charged: the standard one and, chosen once
    /// the call's tier and prompt are known, the variants of its pattern.
    public func pricing(for model: String, on day: Day) -> Pricing {
        Pricing(standard: price(for: model, on: day), variants: variants, day: day)
    }

    /// The variant entries that go with a standard entry (of its pattern), of any date.
    public func variants(of standard: ModelPrice) -> [ModelPrice] {
        variants?.byPattern[standard.model.text] ?? []
    }

    /// Whether any entry (of any date) covers the model.
    public func covers(_ model: String) -> Bool { entries.contains { $0.model.matches(model) } }

    /// The first day a standard entry prices `model`; nil when none does, of any date.
    public func firstPriced(_ model: String) -> Day? {
        entries.filter { !$0.isVariant && $0.model.matches(model) }.map(\.effectiveFrom).min()
    }

    public static func == (a: PriceBook, b: PriceBook) -> Bool { a.entries == b.entries }
    public func hash(into hasher: inout Hasher) { hasher.combine(entries) }
}

/// The variant prices of a price book, by the pattern of the standard entry each goes with: a
/// call charged by `gpt-5*` is never charged a variant of `gpt-5-nano*`, however its name matches.
final class PriceVariants: Sendable {
    let byPattern: [String: [ModelPrice]]
    /// The standard tier's lowest threshold: a call of the standard tier with a smaller prompt
    /// (most calls) has the standard price without a look-up.
    let lowestStandardThreshold: Int

    init(_ entries: [ModelPrice]) {
        byPattern = Dictionary(grouping: entries) { $0.model.text }
        lowestStandardThreshold = entries.filter { $0.tier == nil }.compactMap(\.aboveInputTokens).min() ?? .max
    }

    /// The entry of `pattern` for `tier` in force on `day` whose threshold the prompt passes:
    /// the largest such threshold, then the latest date.
    func price(pattern: String, tier: String?, promptTokens: Int, on day: Day) -> ModelPrice? {
        var best: ModelPrice?
        for entry in byPattern[pattern] ?? [] where entry.tier == tier && entry.effectiveFrom <= day
            && promptTokens > (entry.aboveInputTokens ?? -1) {
            guard let chosen = best else { best = entry; continue }
            let (above, chosenAbove) = (entry.aboveInputTokens ?? -1, chosen.aboveInputTokens ?? -1)
            if above > chosenAbove || (above == chosenAbove && entry.effectiveFrom > chosen.effectiveFrom) { best = entry }
        }
        return best
    }
}

/// The prices a call may be charged, resolved at admission: the model's standard price, and
/// the variants of its pattern for a tier or a long prompt, picked once the call says which apply.
public struct Pricing: Sendable {
    public let standard: ModelPrice?
    private let variants: PriceVariants?
    private let day: Day

    init(standard: ModelPrice?, variants: PriceVariants?, day: Day) {
        self.standard = standard
        self.variants = variants
        self.day = day
    }

    /// Only the standard price (no variants).
    public init(standard: ModelPrice?) {
        self.init(standard: standard, variants: nil, day: Day(daysSinceEpoch: 0))
    }

    /// The price of a call served at `tier` (nil: the standard tier) whose prompt has
    /// `promptTokens` tokens: the tier's entry for the largest threshold the prompt passes, else
    /// the tier's own. `tierPriced` is false when the tier has no price for such a call: the
    /// standard tier's is given then.
    public func price(tier: String?, promptTokens: Int) -> (price: ModelPrice?, tierPriced: Bool) {
        // A variant's search fees it does not name: the standard entry's of the call's day.
        func filled(_ price: ModelPrice) -> ModelPrice { standard.map(price.withUnnamedFees(of:)) ?? price }
        if let tier, let price = lookup(tier: tier, promptTokens: promptTokens) { return (filled(price), true) }
        return (lookup(tier: nil, promptTokens: promptTokens).map(filled), tier == nil)
    }

    /// The same price, of a call run in the US only when `usOnly`: every token price times the
    /// entry's `us_only`, else its standard entry's (Anthropic's multiple covers every price of
    /// the model, a tier's and a long prompt's too). `usOnlyPriced` is false when neither has
    /// one: the global price is given then.
    public func price(tier: String?, promptTokens: Int, usOnly: Bool)
        -> (price: ModelPrice?, tierPriced: Bool, usOnlyPriced: Bool) {
        let (price, tierPriced) = price(tier: tier, promptTokens: promptTokens)
        guard usOnly, let price else { return (price, tierPriced, true) }
        guard let multiple = price.usOnlyMultiple ?? standard?.usOnlyMultiple else { return (price, tierPriced, false) }
        return (price.inUSOnly(times: multiple), tierPriced, true)
    }

    private func lookup(tier: String?, promptTokens: Int) -> ModelPrice? {
        guard let standard, let variants else { return tier == nil ? standard : nil }
        if tier == nil && promptTokens <= variants.lowestStandardThreshold { return standard }
        let variant = variants.price(pattern: standard.model.text, tier: tier, promptTokens: promptTokens, on: day)
        return variant ?? (tier == nil ? standard : nil)
    }
}

/// The service tiers that change a call's price per token, as requests ask for them and
/// answers report them: OpenAI's `service_tier` (`priority`, `flex`) and Anthropic's `speed`
/// (`fast`). Any other value (`auto`, `default`, `standard`, `scale`, …) is the standard tier, nil.
public enum ServiceTier {
    public static let priced = ["fast", "flex", "priority"]

    public static func named(_ text: String?) -> String? {
        guard let text, priced.contains(text) else { return nil }
        return text
    }

    /// The tier a request asks for: OpenAI's `service_tier`; Anthropic's `speed: "fast"` (its
    /// own `service_tier`, `auto` or `standard_only`, chooses capacity, not a price).
    public static func requested(serviceTier: String?, speed: String?, dialect: Dialect) -> String? {
        switch dialect {
        case .openai: return named(serviceTier)
        case .anthropic: return speed == "fast" ? "fast" : nil
        }
    }
}

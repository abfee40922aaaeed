import Metering
import Yams

/// `prices.yaml`: a list of `{ model, effective_from, input, cached_input, cache_write, cache_write_1h,
/// output, audio_input, audio_output, web_search, web_search_preview, file_search, us_only, source, tier,
/// above_input_tokens }`,
/// prices in dollars per 1M tokens as quoted decimal strings with at most six decimals.
///
/// Quotes are required: YAML reads a bare `0.15` as a binary float, and a finance figure must
/// never pass through one. `cached_input` and `cache_write` default to `input` when absent
/// (no discount, no surcharge), which is right for providers without prompt caching;
/// `cache_write_1h` (Anthropic's 1-hour cache writes, which only Anthropic reports) to twice `input`,
/// Anthropic's rule; `audio_input` and `audio_output` (OpenAI's audio tokens) to nothing: such
/// tokens are then charged at the text price, and their rows say so; `us_only` (the multiple of
/// every token price a call run in the US only pays, Anthropic's `inference_geo`) to the standard
/// entry's for a tier's or a long prompt's entry, else to nothing: such calls are then refused
/// while unpriced models are, else charged the global price with a note.
///
/// An entry with `tier` (`priority`, `flex`, `fast`) and/or `above_input_tokens` prices only the
/// calls of that service tier, or with a prompt over that many tokens (Anthropic's long-context
/// rates); it needs a standard entry of the same model pattern beside it.
enum PricesFile {
    static let name = "prices.yaml"
    static let keys = ["model", "effective_from", "input", "cached_input", "cache_write", "cache_write_1h", "output",
                       "audio_input", "audio_output", "web_search", "web_search_preview", "file_search", "us_only", "source", "tier",
                       "above_input_tokens"]

    struct PlacedPrice {
        let price: ModelPrice
        let line: Int
        let field: String
    }

    static func read(_ root: Node?, _ reader: inout PolicyFileReader) -> [PlacedPrice] {
        guard let root, PolicyFileReader.tag(of: root) != .null else { return [] }
        guard let items = reader.sequence(root, "prices") else { return [] }
        var prices: [PlacedPrice] = []
        var seen: [String: Int] = [:]
        // The patterns of standard entries, a broken one's too: its variants are not blamed for
        // its problem (already said).
        var standard = Set<String>()
        for (index, item) in items.enumerated() {
            let field = "prices[\(index)]"
            let fields = item.mapping
            if let fields, fields["tier"] == nil, fields["above_input_tokens"] == nil, let model = fields["model"]?.string {
                standard.insert(model)
            }
            guard var price = readEntry(item, field, &reader) else { continue }
            let line = PolicyFileReader.line(of: item)
            if let earlier = seen[price.id] {
                reader.problem(item, "\(field).effective_from",
                               "duplicate of the entry at line \(earlier) (same model and effective_from)")
                continue
            }
            seen[price.id] = line
            // A tier's or a long prompt's entry without a search fee of its own takes its
            // standard entry's on the call's day, as it takes its US-only multiple: a fee set for a
            // model (web_search_preview's $25) is the model's whatever its tier.
            if price.isVariant {
                for (key, fee) in [("web_search", SearchFees.webSearch), ("web_search_preview", .webSearchPreview),
                                   ("file_search", .fileSearch)] where fields?[key] == nil {
                    price.unnamedFees.insert(fee)
                }
            }
            prices.append(PlacedPrice(price: price, line: line, field: field))
        }
        for placed in prices where placed.price.isVariant && !standard.contains(placed.price.model.text) {
            reader.problem(at: placed.line, "\(placed.field).model",
                           "a price for a tier or a long prompt only, without a standard entry for '\(placed.price.model.text)' (the calls that are neither would have no price)")
        }
        return prices
    }

    private static func readEntry(_ node: Node, _ field: String, _ reader: inout PolicyFileReader) -> ModelPrice? {
        guard let fields = reader.mapping(node, field, allowed: keys) else { return nil }
        var model: ModelPattern?
        if let entry = reader.require(fields, "model"), let text = reader.string(entry) {
            if let why = ProvidersFile.modelPatternProblem(text) {
                reader.problem(entry.value, entry.path, why)
            } else {
                model = ModelPattern(text)
            }
        }
        var day: Day?
        if let entry = reader.require(fields, "effective_from"), let text = reader.string(entry) {
            day = Day(text)
            if day == nil { reader.problem(entry.value, entry.path, "bad date '\(text)' (expected YYYY-MM-DD)") }
        }
        let input = reader.require(fields, "input").flatMap { perToken($0, &reader) }
        let output = reader.require(fields, "output").flatMap { perToken($0, &reader) }
        // Absent means "same as input"; present but invalid is a problem, not a silent default.
        let cachedInput = fields["cached_input"].map { perToken($0, &reader) } ?? input
        let cacheWrite = fields["cache_write"].map { perToken($0, &reader) } ?? input
        let cacheWrite1h = fields["cache_write_1h"].map { perToken($0, &reader) }
            ?? input.map(ModelPrice.anthropicHourWrite(input:))
        let audioInput = fields["audio_input"].map { perToken($0, &reader) }
        let audioOutput = fields["audio_output"].map { perToken($0, &reader) }
        // Absent: the providers' common fee; present but invalid: a problem.
        let webSearch = fields["web_search"].map { perCall($0, webSearchMeaning, &reader) } ?? ModelPrice.defaultWebSearch
        let webSearchPreview = fields["web_search_preview"].map { perCall($0, webSearchMeaning, &reader) }
        let fileSearch = fields["file_search"].map { perCall($0, fileSearchMeaning, &reader) } ?? ModelPrice.defaultFileSearch
        let usOnly = fields["us_only"].map { usOnlyMultiple($0, &reader) }
        var source = ""
        if let entry = fields["source"], let text = reader.string(entry) { source = text }
        var tier: String?
        if let entry = fields["tier"], let text = reader.string(entry) {
            if ServiceTier.named(text) == nil {
                reader.problem(entry.value, entry.path,
                               "unknown tier '\(text)' (expected \(PolicyFileReader.oneOf(ServiceTier.priced)))")
            } else {
                tier = text
            }
        }
        let above = fields["above_input_tokens"].flatMap { reader.integer($0, in: 1...100_000_000) }
        if fields["tier"] != nil && tier == nil || fields["above_input_tokens"] != nil && above == nil { return nil }
        guard let model, let day, let input, let output, let cachedInput, let cacheWrite, let cacheWrite1h,
              let webSearch, let fileSearch, webSearchPreview != .some(nil), audioInput != .some(nil), audioOutput != .some(nil), usOnly != .some(nil) else {
            return nil
        }
        return ModelPrice(model: model, effectiveFrom: day, input: input, cachedInput: cachedInput,
                          cacheWrite: cacheWrite, cacheWrite1h: cacheWrite1h, output: output, webSearch: webSearch,
                          fileSearch: fileSearch, webSearchPreview: webSearchPreview ?? nil,
                          audioInput: audioInput ?? nil, audioOutput: audioOutput ?? nil, source: source,
                          tier: tier, aboveInputTokens: above, usOnlyMultiple: usOnly ?? nil)
    }

    static let priceMeaning = PolicyFileReader.DecimalMeaning(
        noun: "price", withArticle: "a price", unit: "dollars per 1M tokens", example: "0.15")
    static let webSearchMeaning = PolicyFileReader.DecimalMeaning(
        noun: "fee", withArticle: "a fee", unit: "dollars per 1,000 searches", example: "10.00")
    static let fileSearchMeaning = PolicyFileReader.DecimalMeaning(
        noun: "fee", withArticle: "a fee", unit: "dollars per 1,000 calls", example: "2.50")
    static let usOnlyMeaning = PolicyFileReader.DecimalMeaning(
        noun: "multiple", withArticle: "a multiple", unit: "times every token price", example: "1.1")

    /// `us_only`: a quoted multiple over 0 and at most 10, or nil (problem recorded).
    private static func usOnlyMultiple(_ entry: MappingFields.Entry, _ reader: inout PolicyFileReader) -> PriceMultiplier? {
        guard let text = reader.decimal(entry, usOnlyMeaning, convert: { $0 }) else { return nil }
        guard let multiple = PriceMultiplier(text) else {
            reader.problem(entry.value, entry.path,
                           "'\(text)' is not a multiple over 0 and at most \(PriceMultiplier(millionths: PriceMultiplier.largest)), e.g. \"1.1\"")
            return nil
        }
        return multiple
    }

    /// A quoted price per 1M tokens as an exact per-token amount, or nil (problem recorded).
    private static func perToken(_ entry: MappingFields.Entry, _ reader: inout PolicyFileReader) -> Money? {
        reader.decimal(entry, priceMeaning, convert: ModelPrice.perToken(fromPerMillion:))
    }

    /// A quoted fee per 1,000 calls as an exact per-call amount, or nil (problem recorded).
    private static func perCall(_ entry: MappingFields.Entry, _ meaning: PolicyFileReader.DecimalMeaning,
                                _ reader: inout PolicyFileReader) -> Money? {
        reader.decimal(entry, meaning, convert: ModelPrice.perCall(fromPerThousand:))
    }
}

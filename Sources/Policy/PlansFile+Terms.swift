import Metering
import Yams

/// The fields a plan has and a user may override: limits, output cap, budgets, models.
extension PlansFile {
    /// Largest accepted count (tokens a month across an org stay far below it); larger is a typo.
    static let maxLimit = 1_000_000_000_000_000
    static let usdKeys: [(key: String, period: BudgetPeriod)] = [
        ("daily_usd", .day), ("weekly_usd", .week), ("monthly_usd", .month),
    ]
    static let tokenKeys: [(key: String, period: BudgetPeriod)] = [
        ("daily", .day), ("weekly", .week), ("monthly", .month),
    ]
    static let amountMeaning = PolicyFileReader.DecimalMeaning(
        noun: "amount", withArticle: "an amount", unit: "dollars", example: "20.00")

    /// The plan fields present in `fields` (whose keys the caller has already checked).
    static func readTerms(_ fields: MappingFields, _ catalog: ModelCatalog?,
                          _ reader: inout PolicyFileReader) -> PlanTerms {
        var terms = PlanTerms()
        terms.requestsPerMinute = fields["requests_per_minute"].flatMap { limit($0, atLeast: 0, &reader) }
        terms.tokensPerMinute = fields["tokens_per_minute"].flatMap { limit($0, atLeast: 0, &reader) }
        terms.maxConcurrent = fields["max_concurrent"].flatMap { limit($0, atLeast: 0, &reader) }
        // A cap of 0 would clamp every answer to nothing; blocking is what requests_per_minute: 0 says.
        terms.maxOutputTokens = fields["max_output_tokens"].flatMap { limit($0, atLeast: 1, &reader) }
        if let entry = fields["on_output_over_cap"], let action: OverCapAction = reader.choice(entry) {
            terms.onOutputOverCap = action
        }
        terms.budgets = readBudgets(fields, &reader)
        if let entry = fields["models"] { terms.models = readModels(entry, catalog, &reader) }
        return terms
    }

    /// `budget: { daily_usd, weekly_usd, monthly_usd }` and `tokens: { daily, weekly, monthly }`.
    static func readBudgets(_ fields: MappingFields, _ reader: inout PolicyFileReader) -> PeriodBudgets {
        var budgets = PeriodBudgets()
        if let entry = fields["budget"],
           let amounts = reader.mapping(entry.value, entry.path, allowed: usdKeys.map(\.key)) {
            for (key, period) in usdKeys {
                if let amount = amounts[key].flatMap({ dollars($0, &reader) }) { budgets.usd[period] = amount }
            }
        }
        if let entry = fields["tokens"],
           let counts = reader.mapping(entry.value, entry.path, allowed: tokenKeys.map(\.key)) {
            for (key, period) in tokenKeys {
                if let count = counts[key].flatMap({ limit($0, atLeast: 0, &reader) }) { budgets.tokens[period] = count }
            }
        }
        return budgets
    }

    /// A whole number ≥ `atLeast`, or `unlimited`. 0 is a real limit: nothing allowed.
    static func limit(_ entry: MappingFields.Entry, atLeast lowest: Int,
                      _ reader: inout PolicyFileReader) -> Ceiling<Int>? {
        let node = entry.value
        if case .scalar(let scalar) = node {
            switch PolicyFileReader.tag(of: node) {
            case .str:
                if scalar.string == "unlimited" { return .unlimited }
                reader.problem(node, entry.path,
                               "expected a whole number or unlimited, found \(PolicyFileReader.kind(of: node))")
                return nil
            case .int where scalar.string.hasPrefix("-"):
                reader.problem(node, entry.path,
                               "negative limit \(scalar.string) (0 allows nothing; write unlimited for no limit)")
                return nil
            default:
                break
            }
        }
        return reader.integer(entry, in: lowest...maxLimit).map(Ceiling.at)
    }

    /// A quoted dollar amount ("20", "0.50"; same rules as prices), or `unlimited`.
    static func dollars(_ entry: MappingFields.Entry, _ reader: inout PolicyFileReader) -> Ceiling<Money>? {
        let node = entry.value
        if case .scalar(let scalar) = node, PolicyFileReader.tag(of: node) == .str, scalar.string == "unlimited" {
            return .unlimited
        }
        return reader.decimal(entry, amountMeaning, convert: Money.init(dollars:)).map(Ceiling.at)
    }

    /// Names or `*`-globs of the models a plan allows; each must be routed (and priced while
    /// unpriced models are refused), or the plan promises what no call can get.
    static func readModels(_ entry: MappingFields.Entry, _ catalog: ModelCatalog?,
                           _ reader: inout PolicyFileReader) -> [ModelPattern]? {
        guard let items = reader.sequence(entry.value, entry.path) else { return nil }
        var patterns: [ModelPattern] = []
        for (index, item) in items.enumerated() {
            let field = "\(entry.path)[\(index)]"
            guard let text = reader.string(item, field) else { continue }
            if let why = ProvidersFile.modelPatternProblem(text) {
                reader.problem(item, field, why)
                continue
            }
            let pattern = ModelPattern(text)
            if let why = catalog?.problem(with: pattern) {
                reader.problem(item, field, why)
                continue
            }
            if !patterns.contains(pattern) { patterns.append(pattern) }
        }
        return patterns
    }
}

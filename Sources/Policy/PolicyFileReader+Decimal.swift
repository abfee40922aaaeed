import Yams

extension PolicyFileReader {
    /// How a file names the amount it reads, for messages: prices.yaml reads "a price … of dollars
    /// per 1M tokens", plans.yaml "an amount … of dollars".
    struct DecimalMeaning {
        /// "price": in "negative price", "write the price as …".
        let noun: String
        /// "a price": in "expected a price such as …".
        let withArticle: String
        /// "dollars per 1M tokens": in "is not a decimal number of …".
        let unit: String
        let example: String
    }

    /// A quoted non-negative decimal with at most six decimals, converted by `convert` (nil from
    /// it means too large), or nil with the problem recorded.
    ///
    /// One reader for every money figure in the policy files, so prices and budgets follow the
    /// same rules: quotes are required because YAML reads a bare `0.15` as a binary float, and a
    /// finance figure must never pass through one.
    mutating func decimal<Value>(_ entry: MappingFields.Entry, _ meaning: DecimalMeaning,
                                 convert: (String) -> Value?) -> Value? {
        let node = entry.value
        guard case .scalar(let scalar) = node else {
            problem(node, entry.path,
                    "expected \(meaning.withArticle) such as \"\(meaning.example)\", found \(Self.kind(of: node))")
            return nil
        }
        let tag = Self.tag(of: node)
        if tag == .null {
            problem(node, entry.path, "missing value")
            return nil
        }
        let text = scalar.string
        if tag == .int || tag == .float {
            problem(node, entry.path,
                    "write the \(meaning.noun) as a quoted string, \"\(text)\": "
                        + "bare YAML numbers are floats and may not be exact")
            return nil
        }
        if text.hasPrefix("-") {
            problem(node, entry.path, "negative \(meaning.noun) '\(text)'")
            return nil
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let isDecimal = (parts.count == 1 || parts.count == 2) && parts.allSatisfy {
            !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber }
        }
        guard isDecimal else {
            problem(node, entry.path, "'\(text)' is not a decimal number of \(meaning.unit), e.g. \"\(meaning.example)\"")
            return nil
        }
        if parts.count == 2 && parts[1].count > 6 {
            problem(node, entry.path, "'\(text)' has more than six decimals")
            return nil
        }
        guard let value = convert(text) else {
            problem(node, entry.path, "'\(text)' is too large")
            return nil
        }
        return value
    }
}

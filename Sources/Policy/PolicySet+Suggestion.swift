extension PolicySet {
    /// The listed model a mistyped name most likely meant (`gpt-4o-minii`, `GPT-4o-mini`,
    /// `claude-haiku-4.5`): the one nearest by edit distance, ignoring case, if it is within two
    /// edits and no other is as near. For refusals of an unrouted or unpriced model: the caller
    /// cannot see the policy's files, and a glob route (`gpt-*`) makes a typo look unpriced.
    public func suggestion(for model: String) -> String? {
        // The name is the caller's (up to a whole body): nothing longer than a model's is looked at.
        guard !model.isEmpty, model.utf8.count <= 200 else { return nil }
        let typed = Array(model.lowercased().utf8)
        var best: (name: String, distance: Int)?
        var tied = false
        for name in listedModels() where name != model {
            let distance = Self.editDistance(typed, Array(name.lowercased().utf8), atMost: 2)
            guard distance <= 2 else { continue }
            if let current = best, current.distance <= distance {
                if current.distance == distance { tied = true }
                continue
            }
            best = (name, distance)
            tied = false
        }
        return tied ? nil : best?.name
    }

    /// Levenshtein distance, counting an adjacent swap as one edit; anything past `atMost` is
    /// `atMost + 1` (rows stop early once every cell of one is past it).
    static func editDistance(_ a: [UInt8], _ b: [UInt8], atMost limit: Int) -> Int {
        if abs(a.count - b.count) > limit { return limit + 1 }
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var before = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            var smallest = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                var cell = min(previous[j] + 1, current[j - 1] + 1, substitution)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { cell = min(cell, before[j - 2] + 1) }
                current[j] = cell
                smallest = min(smallest, cell)
            }
            if smallest > limit { return limit + 1 }
            (before, previous, current) = (previous, current, before)
        }
        return min(previous[b.count], limit + 1)
    }
}

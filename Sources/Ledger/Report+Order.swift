extension ReportDimension {
    /// Whether its labels are periods (`YYYY-MM-DD`, `YYYY-MM`), which sort as dates.
    var isPeriod: Bool { self == .day || self == .week || self == .month }
}

extension Report {
    /// Rows in the grouping's order, outermost dimension first: days, weeks and months in date
    /// order, other groups costliest first (then by name), each inner group under its outer one.
    /// Sorted by cost alone, a month's days came in no order and a team's users were spread
    /// among other teams' (a finance trial re-sorted them in a spreadsheet).
    static func ordered(_ rows: [ReportRow], by dimensions: [ReportDimension]) -> [ReportRow] {
        // The outer groups a row belongs to, one per level (nil for periods: they need no cost),
        // made once and used to sum each group's cost and to look it up.
        let groups = rows.map { row in
            dimensions.indices.map { level in dimensions[level].isPeriod ? nil : Array(row.values[...level]) }
        }
        var groupCost: [[String]: Int128] = [:]
        for (row, rowGroups) in zip(rows, groups) {
            for case let group? in rowGroups { groupCost[group, default: 0] += row.cost.picodollars }
        }
        let keyed = zip(rows, groups).map { row, rowGroups in
            (row: row, costs: rowGroups.map { $0.flatMap { groupCost[$0] } ?? 0 })
        }
        return keyed.sorted { a, b in
            // The first level where the two differ decides; the levels before it are equal.
            for level in dimensions.indices where a.row.values[level] != b.row.values[level] {
                if a.costs[level] != b.costs[level] { return a.costs[level] > b.costs[level] }
                return a.row.values[level] < b.row.values[level]
            }
            return false
        }.map(\.row)
    }
}

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
        // The cost of each outer group a row belongs to, per level (periods need none).
        var groupCost: [[String]: Int128] = [:]
        for row in rows {
            for level in dimensions.indices where !dimensions[level].isPeriod {
                groupCost[Array(row.values[...level]), default: 0] += row.cost.picodollars
            }
        }
        let keyed = rows.map { row in
            (row: row, costs: dimensions.indices.map { level in
                dimensions[level].isPeriod ? 0 : groupCost[Array(row.values[...level])] ?? 0
            })
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

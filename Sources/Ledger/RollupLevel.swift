/// How finely rollups split calls.
///
/// `detailed` cells are per rollup key (user, team, model, provider, plan, key): a user-day has
/// one per model and key used. `payer` cells are per (user, team, plan) only — a few times
/// fewer — and answer every report that neither groups nor filters by model, provider or key
/// (by user, team, plan, day, week, month, or nothing). Both hold the same figures.
enum RollupLevel: CaseIterable, Hashable {
    case detailed, payer

    /// The table of the level's keys (id → dimension values).
    var keyTable: String { self == .detailed ? "rollup_keys" : "rollup_payers" }

    /// The dimensions the level keeps, as columns of `keyTable`.
    var keyColumns: [String] {
        self == .detailed ? ["user", "team", "model", "provider", "plan", "key_id"] : ["user", "team", "plan"]
    }

    func table(_ span: RollupSpan) -> String {
        switch (self, span) {
        case (.detailed, .hour): return "rollup_hours"
        case (.detailed, .day): return "rollup_days"
        case (.payer, .hour): return "rollup_payer_hours"
        case (.payer, .day): return "rollup_payer_days"
        }
    }

    /// `key` reduced to the dimensions this level keeps.
    func key(_ key: RollupKey) -> RollupKey {
        self == .detailed ? key : RollupKey(user: key.user, team: key.team, model: nil, provider: nil, plan: key.plan, keyId: nil)
    }

    /// The coarsest level that can answer a report grouping and filtering by these dimensions.
    static func answering(groupBy: [ReportDimension], filters: some Sequence<ReportDimension>) -> RollupLevel {
        let needsDetail: Set<ReportDimension> = [.model, .provider, .key]
        return groupBy.contains(where: needsDetail.contains) || filters.contains(where: needsDetail.contains)
            ? .detailed : .payer
    }
}

/// A call's rollup key ids at both levels.
struct RollupKeyIds: Hashable {
    var detailed: Int64
    var payer: Int64

    subscript(level: RollupLevel) -> Int64 { level == .detailed ? detailed : payer }
}

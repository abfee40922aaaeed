import Metering

/// "Calls for models matching `pattern` go to `provider`". Routes are tried in file order;
/// the first match wins, so a specific pattern must come before a broader one.
public struct ModelRoute: Sendable, Hashable, CustomStringConvertible {
    public let pattern: ModelPattern
    /// Name of a provider in the same `PolicySet`.
    public let provider: String
    /// Models tried in order when the provider cannot serve a call (connect errors or
    /// 502/503/529 after its retries), before anything reached the client. Each is routed to
    /// a provider of the same dialect.
    public let fallbacks: [String]

    public init(pattern: ModelPattern, provider: String, fallbacks: [String] = []) {
        self.pattern = pattern
        self.provider = provider
        self.fallbacks = fallbacks
    }

    public var description: String { "\(pattern) -> \(provider)" }
}

/// Set relations between `*`-globs, used to find dead routes and unreachable prices.
enum GlobRelation {
    /// Whether every name `inner` matches is also matched by `outer`.
    ///
    /// Matching `outer` against `inner`'s text works because a literal of `outer` is never `*`,
    /// so it can only consume a literal of `inner`, while `inner`'s `*` (any string) can only be
    /// absorbed by a `*` of `outer`: exactly language inclusion for `*`-only globs.
    static func covers(_ outer: ModelPattern, _ inner: ModelPattern) -> Bool {
        outer.matches(inner.text)
    }

    /// Whether some name matches both globs (reachability over pairs of positions).
    static func intersects(_ a: ModelPattern, _ b: ModelPattern) -> Bool {
        let p = Array(a.text.utf8), q = Array(b.text.utf8)
        let star = UInt8(ascii: "*")
        var seen = Set<Int>()
        var stack = [(0, 0)]
        while let (i, j) = stack.popLast() {
            guard seen.insert(i * (q.count + 1) + j).inserted else { continue }
            if i == p.count && j == q.count { return true }
            let pc = i < p.count ? p[i] : nil, qc = j < q.count ? q[j] : nil
            if pc == star { stack.append((i + 1, j)) }                          // a's * matches nothing more
            if qc == star { stack.append((i, j + 1)) }                          // b's * matches nothing more
            if pc == star, let qc, qc != star { stack.append((i, j + 1)) }      // a's * eats b's literal
            if qc == star, let pc, pc != star { stack.append((i + 1, j)) }      // b's * eats a's literal
            if let pc, let qc, pc != star, qc != star, pc == qc { stack.append((i + 1, j + 1)) }
        }
        return false
    }
}

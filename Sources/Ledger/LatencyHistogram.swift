import Foundation

/// Log-spaced buckets for latency and TTFT percentiles, so rollups can be merged.
///
/// Definition (used for every report, whether its rows come from rollups or raw rows): a
/// percentile is the representative value of the bucket that holds the nearest-rank element
/// (rank ceil(q n) of the sorted values). Values below 128 µs have a bucket each (exact); above,
/// bucket k spans [128 γ^k, 128 γ^(k+1)) with γ = 1.03 and is represented by 2·128 γ^(k+1)/(γ+1)
/// rounded to the µs. Relative error against the exact nearest-rank value: at most
/// (γ-1)/(γ+1) + 0.5/128 < 1.9 % (`relativeError`). Negative values count as 0.
public enum LatencyBuckets {
    static let exactBelow: Int64 = 128
    static let gamma = 1.03
    private static let logGamma = log(gamma)
    /// Documented bound of a percentile's relative error.
    public static let relativeError = 0.019

    static func index(of value: Int64) -> Int {
        if value < exactBelow { return Int(max(value, 0)) }
        let k = Int(log(Double(value) / Double(exactBelow)) / logGamma)
        return Int(exactBelow) + max(k, 0)
    }

    static func representative(of index: Int) -> Int64 {
        if index < Int(exactBelow) { return Int64(index) }
        let k = Double(index - Int(exactBelow))
        let value = 2 * Double(exactBelow) * pow(gamma, k + 1) / (gamma + 1)
        return value >= Double(Int64.max) ? Int64.max : Int64(value.rounded())
    }

    /// Nearest rank of percentile `percent` among `count` values (1-based): ceil(percent·count/100).
    static func rank(percent: Int, count: Int) -> Int { (percent * count + 99) / 100 }
}

/// Bucket counts, sparse: (index, count) pairs by increasing index. The form stored in rollups.
struct SparseHistogram: Sendable, Hashable {
    var pairs: [(index: Int, count: Int)] = []

    static func == (a: SparseHistogram, b: SparseHistogram) -> Bool {
        a.pairs.elementsEqual(b.pairs) { $0.index == $1.index && $0.count == $1.count }
    }

    func hash(into hasher: inout Hasher) {
        for p in pairs { hasher.combine(p.index); hasher.combine(p.count) }
    }

    var isEmpty: Bool { pairs.isEmpty }

    /// Histogram of raw values.
    init(values: [Int64]) {
        guard !values.isEmpty else { return }
        var indexes = values.map(LatencyBuckets.index(of:))
        indexes.sort()
        for i in indexes {
            if let last = pairs.last, last.index == i { pairs[pairs.count - 1].count += 1 }
            else { pairs.append((i, 1)) }
        }
    }

    init() {}

    /// Sum of two histograms (sorted merge).
    func merged(with other: SparseHistogram) -> SparseHistogram {
        if other.pairs.isEmpty { return self }
        if pairs.isEmpty { return other }
        var result = SparseHistogram()
        result.pairs.reserveCapacity(pairs.count + other.pairs.count)
        var i = 0, j = 0
        while i < pairs.count || j < other.pairs.count {
            if j == other.pairs.count || (i < pairs.count && pairs[i].index < other.pairs[j].index) {
                result.pairs.append(pairs[i]); i += 1
            } else if i == pairs.count || other.pairs[j].index < pairs[i].index {
                result.pairs.append(other.pairs[j]); j += 1
            } else {
                result.pairs.append((pairs[i].index, pairs[i].count + other.pairs[j].count)); i += 1; j += 1
            }
        }
        return result
    }

    /// Varints: index delta from the previous pair, then count, per pair.
    func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        encode(into: &bytes)
        return bytes
    }

    /// The encoding in place of `bytes`'s contents, reusing its storage.
    func encode(into bytes: inout [UInt8]) {
        bytes.removeAll(keepingCapacity: true)
        bytes.reserveCapacity(pairs.count * 3)
        var previous = 0
        for p in pairs {
            Self.appendVarint(UInt64(p.index - previous), to: &bytes)
            Self.appendVarint(UInt64(p.count), to: &bytes)
            previous = p.index
        }
    }

    init(decoding bytes: UnsafeRawBufferPointer) {
        Self.forEachPair(in: bytes) { pairs.append(($0, $1)) }
    }

    static func forEachPair(in bytes: UnsafeRawBufferPointer, _ body: (Int, Int) -> Void) {
        var position = 0
        var index = 0
        func varint() -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                value |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { break }
                shift += 7
            }
            return value
        }
        while position < bytes.count {
            index += Int(varint())
            body(index, Int(varint()))
        }
    }

    private static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
}

/// Bucket counts for a report group, merged from many cells, then read as percentiles. Dense
/// from the lowest bucket seen to the highest (a group's latencies span a few hundred buckets),
/// in 32-bit counts: a report may hold tens of thousands of groups (e.g. by day and user).
struct DenseHistogram {
    private var base = 0
    private var counts: [UInt32] = []
    private(set) var total = 0

    mutating func add(index: Int, count: Int) {
        cover(index, index)
        counts[index - base] &+= UInt32(count)
        total += count
    }

    /// Grows the dense range to include buckets `low...high`.
    private mutating func cover(_ low: Int, _ high: Int) {
        if counts.isEmpty {
            base = low
            counts = Array(repeating: 0, count: high - low + 1)
            return
        }
        if low < base {
            counts.insert(contentsOf: repeatElement(0, count: base - low), at: 0)
            base = low
        }
        if high - base >= counts.count {
            counts.append(contentsOf: repeatElement(0, count: high - base + 1 - counts.count))
        }
    }

    mutating func add(value: Int64) { add(index: LatencyBuckets.index(of: value), count: 1) }

    /// Adds a `SparseHistogram` encoding: its range first (pairs come by increasing index), then
    /// the counts, so the dense array grows at most once per call.
    mutating func add(encoded bytes: UnsafeRawBufferPointer, sign: Int = 1) {
        var first: Int?
        var last = 0
        SparseHistogram.forEachPair(in: bytes) { index, _ in
            if first == nil { first = index }
            last = index
        }
        guard let first else { return }
        cover(first, last)
        let base = self.base
        var added = 0
        // Taking a subset's counts away (sign -1) may pass below zero before the rest is added:
        // wrapping arithmetic gives the exact counts once every part is in.
        counts.withUnsafeMutableBufferPointer { counts in
            SparseHistogram.forEachPair(in: bytes) { index, count in
                counts[index - base] &+= UInt32(truncatingIfNeeded: sign * count)
                added += count
            }
        }
        total += sign * added
    }

    mutating func add(_ other: DenseHistogram) {
        guard !other.counts.isEmpty else { return }
        cover(other.base, other.base + other.counts.count - 1)
        let offset = other.base - base
        counts.withUnsafeMutableBufferPointer { counts in
            for (i, count) in other.counts.enumerated() { counts[offset + i] &+= count }
        }
        total += other.total
    }

    /// The representative of the bucket holding the nearest-rank element; nil when empty.
    func percentile(_ percent: Int) -> Int64? {
        guard total > 0 else { return nil }
        let rank = LatencyBuckets.rank(percent: percent, count: total)
        var seen = 0
        for (offset, count) in counts.enumerated() {
            seen += Int(count)
            if seen >= rank { return LatencyBuckets.representative(of: base + offset) }
        }
        return nil
    }
}

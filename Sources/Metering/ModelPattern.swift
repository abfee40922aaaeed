/// A model name or a glob with `*` wildcards (`gpt-4o-mini`, `claude-3-5-haiku-*`).
public struct ModelPattern: Sendable, Hashable, Codable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) { self.text = text }

    public var isExact: Bool { !text.contains("*") }

    /// Literal characters in the pattern: the more, the more specific.
    public var specificity: Int { text.filter { $0 != "*" }.count }

    public var description: String { text }

    /// Runs on every call (routes, prices, limits), so it reads both strings in place (not
    /// through `withUTF8` on copies: a retain and a release of each per pattern tried).
    public func matches(_ name: String) -> Bool {
        let inPlace = text.utf8.withContiguousStorageIfAvailable { p in
            name.utf8.withContiguousStorageIfAvailable { s in Self.glob(p, s) }
        }
        if let matched = inPlace ?? nil { return matched }
        // A bridged string's bytes are not contiguous (none on Linux).
        return Array(text.utf8).withUnsafeBufferPointer { p in Array(name.utf8).withUnsafeBufferPointer { Self.glob(p, $0) } }
    }

    /// `*` matches any run of bytes, itself included; everything else matches itself.
    static func glob(_ p: UnsafeBufferPointer<UInt8>, _ s: UnsafeBufferPointer<UInt8>) -> Bool {
        let star = UInt8(ascii: "*")
        var pi = 0, si = 0
        // Where to resume after the latest `*`: the pattern after it, and the next byte it may eat.
        var resumeP: Int? = nil, resumeS = 0
        while si < s.count {
            if pi < p.count && p[pi] == star {
                pi += 1; resumeP = pi; resumeS = si
            } else if pi < p.count && p[pi] == s[si] {
                pi += 1; si += 1
            } else if let rp = resumeP {
                resumeS += 1; si = resumeS; pi = rp
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == star { pi += 1 }
        return pi == p.count
    }
}

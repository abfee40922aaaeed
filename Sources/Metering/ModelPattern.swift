/// A model name or a glob with `*` wildcards (`gpt-4o-mini`, `claude-3-5-haiku-*`).
public struct ModelPattern: Sendable, Hashable, Codable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) { self.text = text }

    public var isExact: Bool { !text.contains("*") }

    /// Literal characters in the pattern: the more, the more specific.
    public var specificity: Int { text.filter { $0 != "*" }.count }

    public var description: String { text }

    public func matches(_ name: String) -> Bool {
        ModelPattern.glob(Array(text.utf8)[...], Array(name.utf8)[...])
    }

    static func glob(_ p: ArraySlice<UInt8>, _ s: ArraySlice<UInt8>) -> Bool {
        var p = p, s = s
        var starP: ArraySlice<UInt8>? = nil
        var starS = s
        while !s.isEmpty {
            if let c = p.first, c == UInt8(ascii: "*") {
                p = p.dropFirst(); starP = p; starS = s
            } else if let c = p.first, c == s.first {
                p = p.dropFirst(); s = s.dropFirst()
            } else if let sp = starP {
                starS = starS.dropFirst(); s = starS; p = sp
            } else {
                return false
            }
        }
        return p.allSatisfy { $0 == UInt8(ascii: "*") }
    }
}

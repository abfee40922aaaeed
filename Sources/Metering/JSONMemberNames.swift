/// The member names of a JSON object body, as sent: Foundation's parser keeps the last of a name
/// given twice, where another reader may take the first, so a body that names a field twice is
/// refused rather than read one way here and another way there.
public enum JSONMemberNames {
    /// The body is not one JSON object by RFC 8259 (Foundation's parser also takes a byte-order
    /// mark, UTF-16 and trailing commas, which would let a repeated name past this check).
    public struct NotAnObject: Error {}

    /// The first top-level member name given more than once; nil when none is.
    public static func repeated(in body: UnsafeRawBufferPointer) throws(NotAnObject) -> String? {
        var scanner = JSONScanner(body)
        var seen = Set<String>()
        var repeated: String?
        scanner.skipWhitespace()
        guard scanner.current == UInt8(ascii: "{") else { throw NotAnObject() }
        do {
            try scanner.readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
                let name = s.string(key)
                if repeated == nil, !seen.insert(name).inserted { repeated = name }
                return false
            }
            try scanner.expectEnd()
        } catch {
            throw NotAnObject()
        }
        return repeated
    }
}

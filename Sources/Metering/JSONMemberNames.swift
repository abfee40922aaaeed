/// The member names of a JSON object body, as sent: Foundation's parser keeps the last of a name
/// given twice, where another reader may take the first, so a body that names a field twice is
/// refused rather than read one way here and another way there.
public enum JSONMemberNames {
    /// The first top-level member name given more than once; nil when none is (or the body is
    /// not a JSON object: its parser says why).
    public static func repeated(in body: UnsafeRawBufferPointer) -> String? {
        var scanner = JSONScanner(body)
        var seen = Set<String>()
        var repeated: String?
        scanner.skipWhitespace()
        guard scanner.current == UInt8(ascii: "{") else { return nil }
        do {
            try scanner.readObject { (s: inout JSONScanner, key) throws(JSONSyntaxError) -> Bool in
                let name = s.string(key)
                if repeated == nil, !seen.insert(name).inserted { repeated = name }
                return false
            }
        } catch {
            return nil
        }
        return repeated
    }
}

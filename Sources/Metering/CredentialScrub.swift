import NIOCore

/// Removes the gateway's provider key from a provider's error answer before it reaches the
/// client or the ledger: a provider (or a proxy in front of it) may echo request headers in an
/// error body, and the caller must never see the key (invariant 6). Error bodies are held whole
/// for this, up to `holdLimit`; a larger one is cut off rather than relayed unread. A 200
/// stream is scrubbed event by event (`ResponseMeter.Streaming`). The key is found as written
/// or JSON-escaped (`\u0073k-…`, `\/`), and in the answer's headers too.
public enum CredentialScrub {
    public static let holdLimit = 1 << 20
    public static let replacement = "[redacted]"

    public static func scrub(_ parts: [ByteBuffer], secret: String) -> ByteBuffer {
        var whole = ByteBuffer()
        whole.reserveCapacity(parts.reduce(0) { $0 + $1.readableBytes })
        for var part in parts { whole.writeBuffer(&part) }
        return redacted(Array(whole.readableBytesView), secret: secret).map { ByteBuffer(bytes: $0) } ?? whole
    }

    public static func scrub(_ text: String?, secret: String?) -> String? {
        guard let text, let secret else { return text }
        return redacted(Array(text.utf8), secret: secret).map { String(decoding: $0, as: UTF8.self) } ?? text
    }

    /// A relayed header's value without the key; the value itself when too short to hold it
    /// (nearly every header: keys run to a hundred characters and more).
    public static func header(_ value: String, secret: String?) -> String {
        guard let secret, value.utf8.count >= secret.utf8.count else { return value }
        return scrub(value, secret: secret) ?? value
    }

    /// Scrubs a stream read without its events (`ResponseMeter`'s passthrough): `bytes` are
    /// those carried from the last call and a new chunk. What can go now is returned scrubbed;
    /// the last bytes, which could begin a copy of the key that the next chunk completes, are
    /// carried (all go when `final`).
    public static func scrub(stream bytes: [UInt8], secret: String, final: Bool) -> (ready: ByteBuffer, carry: [UInt8]) {
        let key = Array(secret.utf8)
        // A copy is at most six bytes a character (each one a `\uXXXX` escape).
        var cut = final ? bytes.count : max(0, bytes.count - (key.count * 6 - 1))
        var from = 0
        while let match = firstMatch(of: key, in: bytes, from: from), match.lowerBound < cut {
            if match.upperBound > cut {
                cut = match.upperBound  // a whole copy across the cut goes now, scrubbed
                break
            }
            from = match.upperBound
        }
        let ready = Array(bytes[..<cut])
        return (ByteBuffer(bytes: redacted(ready, secret: secret) ?? ready), Array(bytes[cut...]))
    }

    /// `bytes` with every copy of the key, as written or JSON-escaped, replaced; nil if none.
    private static func redacted(_ bytes: [UInt8], secret: String) -> [UInt8]? {
        let key = Array(secret.utf8)
        guard !key.isEmpty, var match = firstMatch(of: key, in: bytes, from: 0) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var start = 0
        while true {
            out += bytes[start..<match.lowerBound]
            out += replacement.utf8
            start = match.upperBound
            guard let next = firstMatch(of: key, in: bytes, from: start) else { break }
            match = next
        }
        out += bytes[start...]
        return out
    }

    /// Where the key first appears from `start`, each of its characters as itself or as a JSON
    /// escape of it.
    private static func firstMatch(of key: [UInt8], in bytes: [UInt8], from start: Int) -> Range<Int>? {
        var i = start
        while i < bytes.count {
            if bytes[i] == key[0] || bytes[i] == UInt8(ascii: "\\"), let end = matchEnd(of: key, in: bytes, at: i) {
                return i..<end
            }
            i += 1
        }
        return nil
    }

    private static func matchEnd(of key: [UInt8], in bytes: [UInt8], at start: Int) -> Int? {
        var at = start
        for expected in key {
            guard at < bytes.count else { return nil }
            if bytes[at] == expected {
                at += 1
                continue
            }
            guard bytes[at] == UInt8(ascii: "\\"), at + 1 < bytes.count else { return nil }
            if bytes[at + 1] == UInt8(ascii: "/"), expected == UInt8(ascii: "/") {
                at += 2
                continue
            }
            guard bytes[at + 1] == UInt8(ascii: "u"), at + 6 <= bytes.count,
                  let value = UInt32(String(decoding: bytes[(at + 2)..<(at + 6)], as: UTF8.self), radix: 16),
                  value == UInt32(expected) else { return nil }
            at += 6
        }
        return at
    }
}

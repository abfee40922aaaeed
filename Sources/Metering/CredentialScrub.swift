import NIOCore

/// Removes the gateway's provider key from a provider's answer before it reaches the client or
/// the ledger: a provider (or a proxy in front of it) may echo request headers in an error, and
/// the caller must never see the key (invariant 6). Error bodies are held whole for this, up to
/// `holdLimit`; a larger one is cut off rather than relayed unread. A 200 stream is checked as
/// it is released, whole events at a time (`ResponseMeter.Streaming`). The key is found as
/// written or JSON-escaped (`\u0073k-…`, `\/`), and in the answer's headers too.
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

    /// Whether `parts` (consecutive, ending where a copy cannot go on: at an event's end) may
    /// hold a copy of `key`, read where they lie: most of a stream holds none, and goes out as
    /// it came. True for a copy, or the start of one that runs into the next part.
    static func mayHold(_ key: [UInt8], in parts: ArraySlice<ByteBuffer>) -> Bool {
        guard !key.isEmpty else { return false }
        for index in parts.indices {
            let found = parts[index].withUnsafeReadableBytes { bytes in
                // Word-at-a-time searches for the two bytes a copy can start with; most places
                // found are told apart by the next byte (a copy's second byte, or `u` or `/`
                // after a backslash) without a call.
                let backslash = UInt8(ascii: "\\")
                let second: UInt8? = key.count > 1 ? key[1] : nil
                var nextKey = ByteSearch.first(key[0], in: bytes, from: 0)
                var nextEscape = ByteSearch.first(backslash, in: bytes, from: 0)
                while true {
                    let start = min(nextKey, nextEscape)
                    guard start < bytes.count else { return false }
                    let next = start + 1 < bytes.count ? bytes[start + 1] : nil
                    let worthMatching = switch (next, second) {
                    case (nil, _), (_, nil): true
                    case (.some(let byte), .some(let second)):
                        byte == second || byte == backslash || byte == UInt8(ascii: "u") || byte == UInt8(ascii: "/")
                    }
                    if worthMatching {
                        switch match(of: key, in: bytes, at: start) {
                        case .whole: return true
                        case .cutShort where index < parts.endIndex - 1: return true
                        case .cutShort, .none: break
                        }
                    }
                    if start == nextKey { nextKey = ByteSearch.first(key[0], in: bytes, from: start + 1) }
                    if start == nextEscape { nextEscape = ByteSearch.first(backslash, in: bytes, from: start + 1) }
                }
            }
            if found { return true }
        }
        return false
    }

    /// Scrubs a stream read without its events (`ResponseMeter`'s passthrough): `bytes` are
    /// those carried from the last call and a new chunk. What can go now is returned scrubbed;
    /// the last bytes, which could begin a copy of the key that the next chunk completes, are
    /// carried. When `final`, all goes but a copy the stream ended partway through.
    public static func scrub(stream bytes: [UInt8], secret: String, final: Bool) -> (ready: ByteBuffer, carry: [UInt8]) {
        let key = Array(secret.utf8)
        guard !key.isEmpty else { return (ByteBuffer(bytes: bytes), []) }
        // A copy is at most six bytes a character (each one a `\uXXXX` escape).
        var cut = final ? bytes.count : max(0, bytes.count - (key.count * 6 - 1))
        var from = 0
        while let start = nextStart(of: key, in: bytes, from: from), start < cut {
            switch match(of: key, in: bytes, at: start) {
            case .whole(let end) where end > cut:
                cut = end  // a whole copy across the cut goes now, scrubbed
            case .cutShort where final:
                cut = start  // the stream ended inside a copy: none of it goes
            default:
                from = start + 1
                continue
            }
            break
        }
        let ready = Array(bytes[..<cut])
        let carry = final ? [] : Array(bytes[cut...])
        return (ByteBuffer(bytes: redacted(ready, secret: secret) ?? ready), carry)
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

    /// Where the key first appears whole from `start`.
    private static func firstMatch(of key: [UInt8], in bytes: [UInt8], from start: Int) -> Range<Int>? {
        var i = start
        while let at = nextStart(of: key, in: bytes, from: i) {
            if case .whole(let end) = match(of: key, in: bytes, at: at) { return at..<end }
            i = at + 1
        }
        return nil
    }

    /// The next place from `start` a copy could begin: the key's first byte, or a backslash
    /// (its escape).
    private static func nextStart(of key: [UInt8], in bytes: some RandomAccessCollection<UInt8>, from start: Int) -> Int? {
        var i = start
        while i < bytes.count {
            let byte = bytes[bytes.index(bytes.startIndex, offsetBy: i)]
            if byte == key[0] || byte == UInt8(ascii: "\\") { return i }
            i += 1
        }
        return nil
    }

    private enum Match {
        case whole(end: Int)
        case none
        /// The bytes ended while they still matched.
        case cutShort
    }

    /// Whether a copy of the key starts at `start`: each of its characters as itself, or as a
    /// JSON escape of it (`\/`, `\u002f`).
    private static func match(of key: [UInt8], in bytes: some RandomAccessCollection<UInt8>, at start: Int) -> Match {
        func byte(_ offset: Int) -> UInt8 { bytes[bytes.index(bytes.startIndex, offsetBy: offset)] }
        let count = bytes.count
        var at = start
        for expected in key {
            guard at < count else { return .cutShort }
            if byte(at) == expected {
                at += 1
                continue
            }
            guard byte(at) == UInt8(ascii: "\\") else { return .none }
            guard at + 1 < count else { return .cutShort }
            if byte(at + 1) == UInt8(ascii: "/"), expected == UInt8(ascii: "/") {
                at += 2
                continue
            }
            guard byte(at + 1) == UInt8(ascii: "u") else { return .none }
            var value: UInt32 = 0
            for k in 2..<6 {
                guard at + k < count else { return .cutShort }
                guard let digit = hexValue(byte(at + k)) else { return .none }
                value = value << 4 | digit
            }
            guard value == UInt32(expected) else { return .none }
            at += 6
        }
        return .whole(end: at)
    }

    private static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}

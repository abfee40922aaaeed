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
        scrub(parts, key: Array(secret.utf8))
    }

    public static func scrub(_ text: String?, secret: String?) -> String? {
        guard let text, let secret else { return text }
        return redacted(Array(text.utf8), key: Array(secret.utf8)).map { String(decoding: $0, as: UTF8.self) } ?? text
    }

    /// A relayed header's value without the key; the value itself when too short to hold it
    /// (nearly every header: keys run to a hundred characters and more).
    public static func header(_ value: String, secret: String?) -> String {
        guard let secret, value.utf8.count >= secret.utf8.count else { return value }
        return scrub(value, secret: secret) ?? value
    }

    /// `parts` as one buffer, every copy of `key` replaced.
    static func scrub(_ parts: [ByteBuffer], key: [UInt8]) -> ByteBuffer {
        var whole = ByteBuffer()
        whole.reserveCapacity(parts.reduce(0) { $0 + $1.readableBytes })
        for var part in parts { whole.writeBuffer(&part) }
        return redacted(Array(whole.readableBytesView), key: key).map { ByteBuffer(bytes: $0) } ?? whole
    }

    /// Whether `parts` (consecutive, ending where a copy cannot go on: at an event's end) may
    /// hold a copy of `key`, read where they lie: most of a stream holds none, and goes out as
    /// it came. True for a copy, or the start of one that runs into the next part.
    static func mayHold(_ key: [UInt8], in parts: ArraySlice<ByteBuffer>) -> Bool {
        guard !key.isEmpty else { return false }
        for index in parts.indices {
            let found = parts[index].withUnsafeReadableBytes { bytes in
                var starts = CopyStarts(key)
                while let start = starts.next(in: bytes) {
                    switch match(of: key, in: bytes, at: start) {
                    case .whole: return true
                    case .cutShort where index < parts.endIndex - 1: return true
                    case .cutShort, .none: continue
                    }
                }
                return false
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
        scrub(stream: bytes, key: Array(secret.utf8), final: final)
    }

    static func scrub(stream bytes: [UInt8], key: [UInt8], final: Bool) -> (ready: ByteBuffer, carry: [UInt8]) {
        guard !key.isEmpty else { return (ByteBuffer(bytes: bytes), []) }
        // A copy is at most six bytes a character (each one a `\uXXXX` escape).
        var cut = final ? bytes.count : max(0, bytes.count - (key.count * 6 - 1))
        bytes.withUnsafeBytes { bytes in
            var starts = CopyStarts(key)
            var copiedUntil = 0  // copies do not overlap: the search goes on after one found
            while let start = starts.next(in: bytes), start < cut {
                guard start >= copiedUntil else { continue }
                switch match(of: key, in: bytes, at: start) {
                case .whole(let end) where end > cut:
                    cut = end  // a whole copy across the cut goes now, scrubbed
                case .whole(let end):
                    copiedUntil = end
                    continue
                case .cutShort where final:
                    cut = start  // the stream ended inside a copy: none of it goes
                case .cutShort, .none:
                    continue
                }
                return
            }
        }
        let ready = Array(bytes[..<cut])
        let carry = final ? [] : Array(bytes[cut...])
        return (ByteBuffer(bytes: redacted(ready, key: key) ?? ready), carry)
    }

    /// `bytes` with every copy of the key, as written or JSON-escaped, replaced; nil if none.
    private static func redacted(_ bytes: [UInt8], key: [UInt8]) -> [UInt8]? {
        guard !key.isEmpty else { return nil }
        let copies = bytes.withUnsafeBytes { bytes in
            var copies: [Range<Int>] = []
            var starts = CopyStarts(key)
            while let start = starts.next(in: bytes) {
                // Copies do not overlap: the search goes on after the one found.
                if let last = copies.last, start < last.upperBound { continue }
                if case .whole(let end) = match(of: key, in: bytes, at: start) { copies.append(start..<end) }
            }
            return copies
        }
        guard !copies.isEmpty else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var start = 0
        for copy in copies {
            out += bytes[start..<copy.lowerBound]
            out += replacement.utf8
            start = copy.upperBound
        }
        out += bytes[start...]
        return out
    }

    /// The places a copy of the key could start, in order: the key's first byte, or a
    /// backslash (its escape), found word-at-a-time. Most are told apart by the next byte (a
    /// copy's second byte, or `u` or `/` after a backslash) without a match.
    private struct CopyStarts {
        private let first: UInt8
        private let second: UInt8?
        private var nextKey = -1
        private var nextEscape = -1
        private static let backslash = UInt8(ascii: "\\")

        init(_ key: [UInt8]) {
            first = key[0]
            second = key.count > 1 ? key[1] : nil
        }

        mutating func next(in bytes: UnsafeRawBufferPointer) -> Int? {
            while true {
                if nextKey < 0 { nextKey = ByteSearch.first(first, in: bytes, from: 0) }
                if nextEscape < 0 { nextEscape = ByteSearch.first(Self.backslash, in: bytes, from: 0) }
                let start = min(nextKey, nextEscape)
                guard start < bytes.count else { return nil }
                if start == nextKey { nextKey = ByteSearch.first(first, in: bytes, from: start + 1) }
                if start == nextEscape { nextEscape = ByteSearch.first(Self.backslash, in: bytes, from: start + 1) }
                guard start + 1 < bytes.count, let second else { return start }
                let next = bytes[start + 1]
                if next == second || next == Self.backslash || next == UInt8(ascii: "u") || next == UInt8(ascii: "/") {
                    return start
                }
            }
        }
    }

    private enum Match {
        case whole(end: Int)
        case none
        /// The bytes ended while they still matched.
        case cutShort
    }

    /// Whether a copy of the key starts at `start`: each of its characters as itself, or as a
    /// JSON escape of it (`\/`, `\u002f`).
    private static func match(of key: [UInt8], in bytes: UnsafeRawBufferPointer, at start: Int) -> Match {
        let count = bytes.count
        var at = start
        for expected in key {
            guard at < count else { return .cutShort }
            if bytes[at] == expected {
                at += 1
                continue
            }
            guard bytes[at] == UInt8(ascii: "\\") else { return .none }
            guard at + 1 < count else { return .cutShort }
            if bytes[at + 1] == UInt8(ascii: "/"), expected == UInt8(ascii: "/") {
                at += 2
                continue
            }
            guard bytes[at + 1] == UInt8(ascii: "u") else { return .none }
            var value: UInt32 = 0
            for k in 2..<6 {
                guard at + k < count else { return .cutShort }
                guard let digit = hexValue(bytes[at + k]) else { return .none }
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

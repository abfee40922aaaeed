import Foundation
import NIOCore

/// Removes the gateway's provider key from a provider's error answer before it reaches the
/// client or the ledger: a provider (or a proxy in front of it) may echo request headers in an
/// error body, and the caller must never see the key (invariant 6). Error bodies are held whole
/// for this, up to `holdLimit`; a larger one is cut off rather than relayed unread. The key is
/// found as written or JSON-escaped (`\u0073k-…`, `\/`), and in the answer's headers too.
enum CredentialScrub {
    static let holdLimit = 1 << 20
    static let replacement = "[redacted]"

    static func scrub(_ parts: [ByteBuffer], secret: String) -> ByteBuffer {
        var whole = ByteBuffer()
        whole.reserveCapacity(parts.reduce(0) { $0 + $1.readableBytes })
        for var part in parts { whole.writeBuffer(&part) }
        let bytes = Array(whole.readableBytesView)
        let key = Array(secret.utf8)
        guard !key.isEmpty, let first = firstMatch(of: key, in: bytes, from: 0) else { return whole }
        var out = ByteBuffer()
        out.reserveCapacity(bytes.count)
        var start = 0
        var match: Range<Int>? = first
        while let found = match {
            out.writeBytes(bytes[start..<found.lowerBound])
            out.writeString(replacement)
            start = found.upperBound
            match = firstMatch(of: key, in: bytes, from: start)
        }
        out.writeBytes(bytes[start...])
        return out
    }

    static func scrub(_ text: String?, secret: String?) -> String? {
        guard let text, let secret, !secret.isEmpty else { return text }
        return text.replacingOccurrences(of: secret, with: replacement)
    }

    /// A relayed header's value without the key; the value itself when too short to hold it
    /// (nearly every header: keys run to a hundred characters and more).
    static func header(_ value: String, secret: String?) -> String {
        guard let secret, !secret.isEmpty, value.utf8.count >= secret.utf8.count, value.contains(secret) else { return value }
        return value.replacingOccurrences(of: secret, with: replacement)
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

import Foundation
import NIOCore

/// Removes the gateway's provider key from a provider's error answer before it reaches the
/// client or the ledger: a provider (or a proxy in front of it) may echo request headers in an
/// error body, and the caller must never see the key (invariant 6). Error bodies are held whole
/// for this, up to `holdLimit`; a larger one is cut off rather than relayed unread.
enum CredentialScrub {
    static let holdLimit = 1 << 20
    static let replacement = "[redacted]"

    static func scrub(_ parts: [ByteBuffer], secret: String) -> ByteBuffer {
        var whole = ByteBuffer()
        whole.reserveCapacity(parts.reduce(0) { $0 + $1.readableBytes })
        for var part in parts { whole.writeBuffer(&part) }
        let bytes = Array(whole.readableBytesView)
        let key = Array(secret.utf8)
        guard !key.isEmpty, let first = firstIndex(of: key, in: bytes, from: 0) else { return whole }
        var out = ByteBuffer()
        out.reserveCapacity(bytes.count)
        var start = 0
        var match: Int? = first
        while let at = match {
            out.writeBytes(bytes[start..<at])
            out.writeString(replacement)
            start = at + key.count
            match = firstIndex(of: key, in: bytes, from: start)
        }
        out.writeBytes(bytes[start...])
        return out
    }

    static func scrub(_ text: String?, secret: String?) -> String? {
        guard let text, let secret, !secret.isEmpty else { return text }
        return text.replacingOccurrences(of: secret, with: replacement)
    }

    private static func firstIndex(of needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard needle.count <= haystack.count - start else { return nil }
        var i = start
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0], haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}

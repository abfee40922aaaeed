/// The readable text of an error answer that is not JSON: a load balancer's or CDN's HTML page
/// (`502 Bad Gateway`, Cloudflare's pages), a plain-text `404 page not found` from a wrong
/// `base_url`. Markup, the title, scripts, styles and comments are dropped, the common entities decoded and
/// blanks collapsed, so the message a client and the ledger get says what happened in a line.
public enum ErrorPageText {
    /// At most this many bytes of a page are read (the text that matters comes first).
    static let readLimit = 64 << 10

    /// The text of `bytes`, at most `limit` characters; markup is dropped when `html` says the
    /// page is HTML or it starts with `<`.
    public static func of(_ bytes: some Collection<UInt8>, html: Bool, limit: Int) -> String {
        let page = Array(bytes.prefix(readLimit))
        let startsWithMarkup = page.first { !isBlank($0) } == UInt8(ascii: "<")
        let text = html || startsWithMarkup ? strippingMarkup(page) : page
        var out: [UInt8] = []
        out.reserveCapacity(min(text.count, limit * 4))
        var pendingBlank = false
        for byte in text {
            if isBlank(byte) {
                pendingBlank = !out.isEmpty
                continue
            }
            if pendingBlank { out.append(0x20) }
            pendingBlank = false
            out.append(byte)
        }
        let decoded = String(decoding: out, as: UTF8.self)
        return decoded.count <= limit ? decoded : String(decoded.prefix(limit - 1)) + "…"
    }

    /// The page without tags, comments, scripts and styles (each leaves a blank), entities decoded.
    private static func strippingMarkup(_ page: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(page.count)
        var i = 0
        while i < page.count {
            let byte = page[i]
            if byte == UInt8(ascii: "<") {
                if startsIgnoringCase(page, at: i, with: "<!--") {
                    i = end(of: "-->", in: page, from: i + 4)
                } else if let element = ["script", "style", "title"].first(where: { startsTag(page, at: i, named: $0) }) {
                    // (A title repeats the page's heading: "502 Bad Gateway" twice otherwise.)
                    i = end(of: ">", in: page, from: end(of: "</\(element)", in: page, from: i + 1))
                } else {
                    i = end(of: ">", in: page, from: i + 1)
                }
                out.append(0x20)
                continue
            }
            if byte == UInt8(ascii: "&"), let (decoded, length) = entity(page, at: i) {
                out.append(contentsOf: decoded)
                i += length
                continue
            }
            out.append(byte)
            i += 1
        }
        return out
    }

    private static let entities: [(String, String)] = [
        ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&apos;", "'"),
        ("&nbsp;", " "), ("&#8226;", "•"), ("&bull;", "•"), ("&middot;", "·"),
    ]

    private static func entity(_ page: [UInt8], at i: Int) -> ([UInt8], Int)? {
        for (name, text) in entities where startsIgnoringCase(page, at: i, with: name) {
            return (Array(text.utf8), name.utf8.count)
        }
        return nil
    }

    private static func startsTag(_ page: [UInt8], at i: Int, named name: String) -> Bool {
        guard startsIgnoringCase(page, at: i + 1, with: name) else { return false }
        let after = i + 1 + name.utf8.count
        return after >= page.count || page[after] == UInt8(ascii: ">") || isBlank(page[after])
    }

    /// The index just past the first `marker` at or after `start` (case-insensitive), or the end.
    private static func end(of marker: String, in page: [UInt8], from start: Int) -> Int {
        let length = marker.utf8.count
        var i = start
        while i + length <= page.count {
            if startsIgnoringCase(page, at: i, with: marker) { return i + length }
            i += 1
        }
        return page.count
    }

    /// `text` is lower-case.
    private static func startsIgnoringCase(_ page: [UInt8], at i: Int, with text: String) -> Bool {
        let pattern = text.utf8
        guard i >= 0, i + pattern.count <= page.count else { return false }
        return page[i..<(i + pattern.count)].equals(ignoringASCIICase: pattern)
    }

    private static func isBlank(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D || byte == 0x0C
    }
}

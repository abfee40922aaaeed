/// Builds the response head from the lines curl hands its header callback:
/// a status line, header lines, a blank line — repeated for each interim 1xx
/// response, then trailers after the body. Only the final head is handed over.
struct ResponseHeadParser {
    private enum State {
        case awaitingStatusLine
        case readingHeaders
        case done
    }

    private var state = State.awaitingStatusLine
    private var head = UpstreamHead(status: 0)

    /// Whether the final head has been seen; later lines (trailers) are ignored.
    var isComplete: Bool {
        if case .done = state { return true }
        return false
    }

    /// Feeds one line (with or without its CRLF). Returns the head when this
    /// line completed the final (non-1xx) response head.
    mutating func parse(line raw: UnsafeRawBufferPointer) -> UpstreamHead? {
        var line = raw[...]
        while let last = line.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") {
            line = line.dropLast()
        }
        return parse(trimmed: line)
    }

    mutating func parse(line: String) -> UpstreamHead? {
        var bytes = Array(line.utf8)[...]
        while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") {
            bytes = bytes.dropLast()
        }
        return parse(trimmed: bytes)
    }

    private mutating func parse<Bytes: BidirectionalCollection<UInt8>>(trimmed line: Bytes) -> UpstreamHead? {
        switch state {
        case .done:
            return nil
        case .awaitingStatusLine:
            if let (version, status, reason) = Self.statusLine(line) {
                head = UpstreamHead(status: status, reason: reason, httpVersion: version)
                // Room for a provider's usual headers (a dozen or so) without regrowing per line.
                head.headers.reserveCapacity(16)
                state = .readingHeaders
            }
            return nil
        case .readingHeaders:
            if line.isEmpty {
                if (100..<200).contains(head.status) {
                    // Interim response (100 Continue, 103 Early Hints): the real one follows.
                    state = .awaitingStatusLine
                    return nil
                }
                state = .done
                // Handed over, not kept: the transfer, and so this parser, lives as long as the
                // stream, and a provider's head is a dozen strings or more.
                let final = head
                head = UpstreamHead(status: 0)
                return final
            }
            if let first = line.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
                // Obsolete line folding: continues the previous value.
                if !head.headers.isEmpty {
                    head.headers[head.headers.count - 1].value += " " + Self.trimmed(line)
                }
                return nil
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return nil }
            let name = String(decoding: line[..<colon], as: UTF8.self)
            let value = Self.trimmed(line[line.index(after: colon)...])
            head.headers.append((name: name, value: value))
            return nil
        }
    }

    /// "HTTP/1.1 200 OK", "HTTP/2 200", "HTTP/1.0 404 Not Found". Byte scan:
    /// this runs once per response on the single curl thread.
    private static func statusLine<Bytes: BidirectionalCollection<UInt8>>(
        _ line: Bytes
    ) -> (UpstreamHTTPVersion, Int, String)? {
        guard line.starts(with: "HTTP/".utf8) else { return nil }
        var i = line.index(line.startIndex, offsetBy: 5)
        func number() -> Int? {
            var value = 0, digits = 0
            while i != line.endIndex, line[i] >= UInt8(ascii: "0"), line[i] <= UInt8(ascii: "9"), digits < 4 {
                value = value * 10 + Int(line[i] - UInt8(ascii: "0"))
                digits += 1
                i = line.index(after: i)
            }
            return digits > 0 ? value : nil
        }
        func skipSpaces() {
            while i != line.endIndex, line[i] == UInt8(ascii: " ") { i = line.index(after: i) }
        }
        guard let major = number() else { return nil }
        var minor = 0
        if i != line.endIndex, line[i] == UInt8(ascii: ".") {
            i = line.index(after: i)
            guard let m = number() else { return nil }
            minor = m
        }
        guard i != line.endIndex, line[i] == UInt8(ascii: " ") else { return nil }
        skipSpaces()
        guard let status = number(), (100...999).contains(status) else { return nil }
        guard i == line.endIndex || line[i] == UInt8(ascii: " ") else { return nil }
        let reason = trimmed(line[i...])
        return (UpstreamHTTPVersion(major: major, minor: minor), status, reason)
    }

    private static func trimmed<Bytes: BidirectionalCollection<UInt8>>(_ bytes: Bytes) -> String {
        var start = bytes.startIndex, end = bytes.endIndex
        while start < end, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") {
            start = bytes.index(after: start)
        }
        while start < end {
            let before = bytes.index(before: end)
            guard bytes[before] == UInt8(ascii: " ") || bytes[before] == UInt8(ascii: "\t") else { break }
            end = before
        }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}

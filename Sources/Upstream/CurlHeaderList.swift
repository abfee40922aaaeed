import CCurl

/// A request's header lines as the `curl_slist` that `CURLOPT_HTTPHEADER` takes, built in one
/// allocation: the nodes first, then their NUL-terminated lines. curl only reads the list, so
/// it need not come from `curl_slist_append`, which allocated twice per line (node and copy),
/// on top of the Swift string for the line.
struct CurlHeaderList {
    /// The first node; valid until `deallocate()`.
    let head: UnsafeMutablePointer<curl_slist>

    /// Names curl must compute or must not send: the body's length is known,
    /// and `Expect: 100-continue` would cost a round trip. A switch on the length first: most
    /// names are none of them (walking an array of the three retained and released each, per
    /// header line of every call).
    private static func isOwned(_ name: String) -> Bool {
        switch name.utf8.count {
        case 14: return name.caseInsensitiveEquals("content-length")
        case 17: return name.caseInsensitiveEquals("transfer-encoding")
        case 6: return name.caseInsensitiveEquals("expect")
        default: return false
        }
    }

    private struct Line {
        enum Form {
            /// "Name: value".
            case value
            /// "Name;": curl's syntax for a header with an empty value ("Name:" would remove it).
            case empty
            /// "Name:": curl does not send its own header of that name.
            case removal
        }

        let name: String
        let value: String
        let form: Form

        /// Bytes of the line with its NUL.
        var size: Int { name.utf8.count + 1 + (form == .value ? 1 + value.utf8.count : 0) + 1 }
    }

    /// The lines for `headers`, skipping any that could split a line or that curl owns, then
    /// "Expect:" (no 100-continue) and, without a Content-Type, "Content-Type:" (curl would
    /// add application/x-www-form-urlencoded to a POST).
    init(_ headers: [(String, String)]) {
        var lines: [Line] = []
        lines.reserveCapacity(headers.count + 2)
        var hasContentType = false
        for (name, value) in headers {
            guard !name.isEmpty,
                  !name.utf8.containsByte(where: { $0 == 13 || $0 == 10 || $0 == UInt8(ascii: ":") }),
                  !value.utf8.containsByte(where: { $0 == 13 || $0 == 10 }),
                  !Self.isOwned(name)
            else { continue }
            if name.caseInsensitiveEquals("content-type") { hasContentType = true }
            lines.append(Line(name: name, value: value, form: value.isEmpty ? .empty : .value))
        }
        lines.append(Line(name: "Expect", value: "", form: .removal))
        if !hasContentType { lines.append(Line(name: "Content-Type", value: "", form: .removal)) }

        let nodeBytes = lines.count * MemoryLayout<curl_slist>.stride
        let block = UnsafeMutableRawPointer.allocate(byteCount: nodeBytes + lines.reduce(0) { $0 + $1.size },
                                                     alignment: MemoryLayout<curl_slist>.alignment)
        let nodes = block.bindMemory(to: curl_slist.self, capacity: lines.count)
        var text = (block + nodeBytes).bindMemory(to: CChar.self, capacity: 1)
        func put(_ string: String) {
            // In place (a copy for withUTF8 costs a retain and a release); a bridged string's
            // bytes are not contiguous and go one by one.
            let copied: Void? = string.utf8.withContiguousStorageIfAvailable { bytes in
                guard let base = bytes.baseAddress else { return }
                UnsafeMutableRawPointer(text).copyMemory(from: base, byteCount: bytes.count)
                text += bytes.count
            }
            if copied == nil { string.utf8.forEach(put) }
        }
        func put(_ byte: UInt8) {
            text.pointee = CChar(bitPattern: byte)
            text += 1
        }
        for (index, line) in lines.enumerated() {
            let start = text
            put(line.name)
            switch line.form {
            case .value:
                put(UInt8(ascii: ":"))
                put(UInt8(ascii: " "))
                put(line.value)
            case .empty: put(UInt8(ascii: ";"))
            case .removal: put(UInt8(ascii: ":"))
            }
            put(0)
            (nodes + index).initialize(to: curl_slist(data: start, next: index + 1 < lines.count ? nodes + index + 1 : nil))
        }
        head = nodes
    }

    /// Frees the list; curl must be done with it (the transfer ended or its handle was reset).
    func deallocate() {
        UnsafeMutableRawPointer(head).deallocate()
    }
}

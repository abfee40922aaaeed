import NIOCore

extension RequestPeek {
    /// Whether `withIncludeUsage` would change the body.
    public var needsIncludeUsage: Bool { includeUsage != true }

    /// The body this peek read, rewritten so `stream_options.include_usage` is `true`; every
    /// other byte is kept as it was. `body` must be the exact bytes the peek was made from.
    ///
    /// - `stream_options` absent: `"stream_options":{"include_usage":true}` goes right after
    ///   the opening `{` (no need to find the end of a possibly large body).
    /// - `stream_options` null: the `null` becomes `{"include_usage":true}`.
    /// - present without `include_usage`: `"include_usage":true` goes after its `{`.
    /// - `include_usage` false or null: that value becomes `true`.
    public func withIncludeUsage(_ body: [UInt8]) -> [UInt8] {
        guard let edit = includeUsageEdit(bodyCount: body.count) else { return body }
        var out: [UInt8] = []
        out.reserveCapacity(body.count + edit.text.utf8.count)
        out.append(contentsOf: body[..<edit.range.lowerBound])
        out.append(contentsOf: edit.text.utf8)
        out.append(contentsOf: body[edit.range.upperBound...])
        return out
    }

    public func withIncludeUsage(_ body: ByteBuffer) -> ByteBuffer {
        guard let edit = includeUsageEdit(bodyCount: body.readableBytes) else { return body }
        var out = ByteBuffer()
        out.reserveCapacity(body.readableBytes + edit.text.utf8.count)
        let start = body.readerIndex
        out.writeImmutableBuffer(body.getSlice(at: start, length: edit.range.lowerBound)!)
        out.writeString(edit.text)
        out.writeImmutableBuffer(body.getSlice(at: start + edit.range.upperBound,
                                               length: body.readableBytes - edit.range.upperBound)!)
        return out
    }

    /// One splice: replace `range` of the body with `text`.
    private func includeUsageEdit(bodyCount: Int) -> (range: Range<Int>, text: String)? {
        guard needsIncludeUsage else { return nil }
        precondition(bodyCount == bodyBytes, "withIncludeUsage needs the body the peek read")
        if let value = anchors.includeUsage {
            return (value, "true")
        }
        if let options = anchors.streamOptions {
            if anchors.streamOptionsIsNull { return (options, #"{"include_usage":true}"#) }
            let at = options.lowerBound + 1  // just after its '{'
            return (at..<at, anchors.streamOptionsIsEmpty ? #""include_usage":true"# : #""include_usage":true,"#)
        }
        let at = anchors.objectStart + 1
        let member = #""stream_options":{"include_usage":true}"#
        return (at..<at, anchors.objectIsEmpty ? member : member + ",")
    }
}

import NIOCore

/// Bytes received but not yet released, kept as the slices of the chunks they came in (no
/// copying), addressed by absolute stream offset.
struct PendingBytes {
    private var slices: [ByteBuffer] = []
    /// Absolute offset of the first pending byte.
    private(set) var start = 0
    /// Absolute offset just past the last pending byte.
    private(set) var end = 0

    var isEmpty: Bool { start == end }

    mutating func append(_ chunk: ByteBuffer) {
        guard chunk.readableBytes > 0 else { return }
        slices.append(chunk)
        end += chunk.readableBytes
    }

    /// Moves the bytes before `offset` to `out`, as few slices as possible.
    mutating func release(upTo offset: Int, into out: inout [ByteBuffer]) {
        consume(upTo: offset) { out.append($0) }
    }

    /// Discards the bytes before `offset`.
    mutating func drop(upTo offset: Int) {
        consume(upTo: offset) { _ in }
    }

    private mutating func consume(upTo offset: Int, _ take: (ByteBuffer) -> Void) {
        precondition(offset <= end, "releasing bytes not yet received")
        var taken = 0
        while start < offset {
            let wanted = offset - start
            if slices[taken].readableBytes <= wanted {
                start += slices[taken].readableBytes
                take(slices[taken])
                taken += 1
            } else {
                take(slices[taken].readSlice(length: wanted)!)
                start += wanted
            }
        }
        if taken > 0 { slices.removeFirst(taken) }
    }
}

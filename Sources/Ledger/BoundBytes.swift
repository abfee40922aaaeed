/// The text and blob values bound to one statement, copied into buffers the statement owns so
/// that SQLite reads them in place (`SQLITE_STATIC`). SQLite's own copy (`SQLITE_TRANSIENT`) was
/// a malloc and a free per value per row (Debian's SQLite is built without its lookaside
/// allocator): about 13 of the event loop's 82 mallocs per recorded call. The bytes must stay
/// put until SQLite has stepped: `reset()` comes only after, and the buffers serve row after row.
final class BoundBytes {
    static let chunkSize = 4096

    private var chunks: [UnsafeMutableRawBufferPointer] = []
    private var chunk = 0
    private var used = 0

    deinit {
        for chunk in chunks { chunk.deallocate() }
    }

    /// Where a copy of `bytes` lives until `reset()`. Never moves what an earlier call copied:
    /// a value that does not fit goes into the next buffer (one of its own if it is larger).
    func copy(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawPointer {
        while chunk < chunks.count && chunks[chunk].count - used < bytes.count {
            chunk += 1
            used = 0
        }
        if chunk == chunks.count {
            chunks.append(.allocate(byteCount: max(Self.chunkSize, bytes.count), alignment: 1))
            used = 0
        }
        let start = chunks[chunk].baseAddress! + used
        if let source = bytes.baseAddress, !bytes.isEmpty {
            start.copyMemory(from: source, byteCount: bytes.count)
        }
        used += bytes.count
        return UnsafeRawPointer(start)
    }

    /// The statement ran: its bound values may be overwritten by the next row's.
    func reset() {
        chunk = 0
        used = 0
    }

    /// Bytes held for reuse (a value larger than a buffer keeps its own).
    var capacity: Int { chunks.reduce(0) { $0 + $1.count } }
}

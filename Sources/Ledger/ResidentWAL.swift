import Foundation

/// Keeps the pages of the ledger's WAL mapped into the process, so that page-cache reclaim that
/// takes only pages nobody maps leaves them in memory.
///
/// Why: a WAL frame (a page and its 24-byte header) never fills whole 4 KiB pages, so a commit
/// that writes a frame over a page that left the cache first reads that page back from disk,
/// inside its `pwrite`, which the rows behind it then wait for. This VM runs DAMON, which pages out
/// file pages that no process maps (anonymous and mapped ones are exempt), the WAL's among them
/// however recently written: a rig run traced 2,038 such reads on the event loop, 300 ms in all,
/// 6 over 5 ms and the longest 19.7 ms. With the WAL mapped, a reproduction saw none. Asking the
/// kernel to read the pages back after each checkpoint instead (`posix_fadvise`) did not help:
/// commits then waited for those reads.
///
/// Costs the WAL's size in resident memory (counted as RssFile: about 34 MB at the default
/// checkpoint size). Used by the checkpoint thread only; does nothing outside Linux.
final class ResidentWAL {
    private let path: String
    /// The mapping covers a fixed window, beyond the WAL's bound (about 135 MB, see
    /// `LedgerWriter.Options.checkpointPages`), so that a WAL that grows needs no new mapping.
    /// Nothing ever reads through it, so its part past the file's end does no harm.
    private static let window = 1 << 30
    private var descriptor: Int32 = -1
    private var base: UnsafeMutableRawPointer?

    init(databasePath: String) {
        path = databasePath + "-wal"
    }

    /// Maps the WAL's pages that are not mapped yet: new ones, and any that reclaim took after
    /// all (read back here, on the checkpoint thread, not in a commit).
    func refresh() {
        #if os(Linux)
        if base == nil {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return }
            guard let mapped = mmap(nil, Self.window, PROT_READ, MAP_SHARED, fd, 0), mapped != MAP_FAILED else {
                Glibc.close(fd)
                return
            }
            descriptor = fd
            base = mapped
        }
        var info = stat()
        guard let base, fstat(descriptor, &info) == 0, info.st_size > 0 else { return }
        // Fails (EFAULT) only for pages past the end of a WAL truncated meanwhile.
        _ = madvise(base, min(Int(info.st_size), Self.window), MADV_POPULATE_READ)
        #endif
    }

    func close() {
        #if os(Linux)
        if let base { munmap(base, Self.window) }
        if descriptor >= 0 { Glibc.close(descriptor) }
        base = nil
        descriptor = -1
        #endif
    }
}

import Foundation

/// The rows of calls in the order they ended, appended to a file before SQLite has them: the
/// response waits for this `write` (about a microsecond) instead of a commit (about 40 µs alone,
/// more when a checkpoint holds it), and the writer thread inserts the rows in batches behind it.
///
/// Why this keeps invariant 1: a row counts as recorded once it survives a kill of the process.
/// A WAL commit at `synchronous=NORMAL` gives that through the page cache, and so does a plain
/// `write` to this file. At the next start `LedgerWriter` replays the journals of gateways that are
/// gone before anything reads the ledger; a row that reached SQLite already is refused by its
/// unique id, so replaying too much is harmless.
///
/// Files: `<ledger>.rows-<instance>.<n>`, segments of about `segmentBytes`, and
/// `<ledger>.rows-<instance>.lock`, held with `flock` for the gateway's whole life (like the
/// in-flight markers), so that a replay never takes the journal of a gateway that still runs. A
/// segment is removed once every row in it is committed and a newer segment took over; a clean
/// stop removes them all. A row that could not commit (closing while commits fail) keeps its
/// segment for the next start.
///
/// If the journal cannot be written (a full disk), its rows go to the writer the old way: their
/// callbacks wait for their commit, and the ledger's usual failure handling applies.
package final class LedgerJournal: @unchecked Sendable {
    typealias Pending = GroupCommitQueue.Pending

    /// `<ledger>.rows-<instance>`.
    let base: String
    private let segmentBytes: Int
    /// -1 once `finish` closed it.
    private var lockDescriptor: Int32

    // Guarded by `lock`.
    private let lock = NSLock()
    /// Taken before `lock` is let go and held while callbacks run, so that they run in the order
    /// their rows were staged even when two threads write.
    private let callbackOrder = NSLock()
    private var staged: [Pending] = []
    private var closed = false
    private var encoded: [UInt8] = []
    /// Bytes of encoded rows kept between writes: 256 rows or so.
    private static let encodingRoom = 64 << 10
    private var descriptor: Int32 = -1
    private var segment = 0
    private var segmentSize = 0
    private var segments: [Int: Segment] = [:]

    private struct Segment {
        var appended = 0
        var settled = 0
        /// A row of it failed to commit: it stays for the next start's replay.
        var keep = false
    }

    /// nil if its lock cannot be made and held (a read-only directory): the writer goes without.
    init?(databasePath: String, segmentBytes: Int = 4 << 20) {
        var random = SystemRandomNumberGenerator()
        base = databasePath + Self.infix + String(random.next(), radix: 36)
        self.segmentBytes = max(1, segmentBytes)
        lockDescriptor = open(base + ".lock", O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o644)
        guard lockDescriptor >= 0 else { return nil }
        // Another gateway's start may take the lock between the open and the flock, find no
        // segment and remove the file: then this lock guards nothing a replay would look for.
        var held = stat(), named = stat()
        guard flock(lockDescriptor, LOCK_EX | LOCK_NB) == 0, fstat(lockDescriptor, &held) == 0,
              stat(base + ".lock", &named) == 0, held.st_ino == named.st_ino, held.st_dev == named.st_dev else {
            Foundation.close(lockDescriptor)
            return nil
        }
    }

    /// Queues `entry` until `write(into:)`. nil once closed; true when it is the first queued,
    /// i.e. the caller must see to a `write(into:)`.
    func stage(_ entry: LedgerEntry, onCommit: @escaping LedgerWriter.Completion) -> Bool? {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return nil }
        staged.append(Pending(entry: entry, onCommit: onCommit))
        return staged.count == 1
    }

    /// Appends every staged row to the journal in one `write`, hands them to `queue` for SQLite,
    /// and tells their callers they are recorded, in the order they were staged. Rows the journal
    /// could not take go to `queue` with their callers' callbacks (answered when they commit).
    /// Callbacks must not call `write` (it would wait for itself).
    func write(into queue: GroupCommitQueue) {
        var taken: [Pending] = []
        lock.lock()
        swap(&taken, &staged)
        guard !taken.isEmpty else { return lock.unlock() }
        let number = append(taken)
        if let number {
            let settle: LedgerWriter.Completion = { [self] result in settled(number, result) }
            if !queue.append(contentsOf: taken.lazy.map { Pending(entry: $0.entry, onCommit: settle) }, callersWait: false) {
                // Closing already: the rows stay in the journal for the next start.
                segments[number]?.keep = true
            }
        } else if queue.append(contentsOf: taken, callersWait: true) {
            return lock.unlock()
        }
        callbackOrder.lock()
        lock.unlock()
        let result: Result<Void, LedgerError> = number != nil ? .success(()) : .failure(.closed)
        for pending in taken { pending.onCommit(result) }
        callbackOrder.unlock()
    }

    /// No more rows are staged; the rows staged already go to `queue`.
    func close(into queue: GroupCommitQueue) {
        lock.lock()
        closed = true
        lock.unlock()
        write(into: queue)
    }

    /// Once the writer has stopped: removes the segments whose rows all committed, and the lock
    /// unless a segment stays.
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        guard lockDescriptor >= 0 else { return }
        if descriptor >= 0 { endSegment() }
        for number in Array(segments.keys) { removeIfDone(number) }
        if segments.isEmpty { unlink(base + ".lock") }
        Foundation.close(lockDescriptor)
        lockDescriptor = -1
    }

    /// Drops the encoding buffer's room over what a pass of steady load uses, which only a
    /// burst grows it to (the writer calls it once idle).
    func releaseRoom() {
        lock.lock()
        defer { lock.unlock() }
        if encoded.capacity > Self.encodingRoom { encoded = [] }
    }

    /// Bytes the encoding buffer has room for (tests read it).
    package var encodingCapacity: Int {
        lock.lock()
        defer { lock.unlock() }
        return encoded.capacity
    }

    // MARK: Private (under `lock`)

    /// Writes the records of `rows` to the current segment (a new one when it is full); the
    /// segment's number, or nil if the write failed (the segment is cut back to its last whole record).
    private func append(_ rows: [Pending]) -> Int? {
        encoded.removeAll(keepingRoomAbove: Self.encodingRoom)
        for pending in rows { JournalRecord.append(pending.entry, to: &encoded) }
        if descriptor >= 0 && segmentSize >= segmentBytes { endSegment() }
        if descriptor < 0 {
            let next = segment + 1
            descriptor = open(path(of: next), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, SQLiteConnection.fileMode)
            guard descriptor >= 0 else { return nil }
            segment = next
            segmentSize = 0
            segments[segment] = Segment()
        }
        guard writeAll(encoded, to: descriptor) else {
            // A record cut short would end the replay of this segment early: cut it off, or
            // leave the segment for a new one.
            if ftruncate(descriptor, off_t(segmentSize)) != 0 { endSegment() }
            return nil
        }
        segmentSize += encoded.count
        segments[segment]?.appended += rows.count
        if encoded.capacity > 1 << 20 { encoded = [] }
        return segment
    }

    private func endSegment() {
        Foundation.close(descriptor)
        descriptor = -1
        removeIfDone(segment)
    }

    private func settled(_ number: Int, _ result: Result<Void, LedgerError>) {
        lock.lock()
        defer { lock.unlock() }
        segments[number]?.settled += 1
        // A refused duplicate id is a row the ledger has. (Not this call's: ids are random, so
        // a clash with another call is left aside.) Anything else did not commit.
        if case .failure(let error) = result, !error.isConstraintViolation { segments[number]?.keep = true }
        removeIfDone(number)
    }

    private func removeIfDone(_ number: Int) {
        // The segment being written stays, whatever is committed: more rows are coming.
        let isCurrent = number == segment && descriptor >= 0
        guard let state = segments[number], !isCurrent, !state.keep, state.settled == state.appended else { return }
        unlink(path(of: number))
        segments[number] = nil
    }

    private func path(of number: Int) -> String { base + "." + String(number) }

    // MARK: Replay

    static let infix = ".rows-"

    /// The journal of a gateway that is gone: its rows, in order, and the files to remove once
    /// they are committed. Holds the journal's lock until `remove` or `release`.
    struct Orphan {
        let lockFile: String
        let segmentFiles: [String]
        let entries: [LedgerEntry]
        /// Bytes after the last whole record of a segment (a power cut mid-write), in all.
        let damagedBytes: Int
        /// Whole records this build cannot read: the journal stays for a build that can.
        let unreadable: Int
        fileprivate let lockDescriptor: Int32

        func remove() {
            for file in segmentFiles { unlink(file) }
            unlink(lockFile)
            release()
        }

        func release() { Foundation.close(lockDescriptor) }
    }

    /// Whether a journal of a process that is gone lies beside `databasePath`, of the ledger's
    /// rows (`infix`) or of another (the gateway's in-flight markers): a free lock, looked at
    /// without reading the journal.
    package static func anyLeftBehind(beside databasePath: String, infix: String = infix) -> Bool {
        let url = URL(fileURLWithPath: databasePath)
        let directory = url.deletingLastPathComponent().path
        let prefix = url.lastPathComponent + infix
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.contains { name in
            guard name.hasPrefix(prefix), name.hasSuffix(".lock") else { return false }
            let lock = open(directory + "/" + name, O_RDWR | O_CLOEXEC)
            guard lock >= 0 else { return false }
            defer { Foundation.close(lock) }  // closing drops the lock taken to look
            return flock(lock, LOCK_EX | LOCK_NB) == 0
        }
    }

    /// The journals beside `databasePath` whose gateway is gone (their lock is free).
    static func orphans(of databasePath: String) -> [Orphan] {
        let url = URL(fileURLWithPath: databasePath)
        let directory = url.deletingLastPathComponent().path
        let prefix = url.lastPathComponent + infix
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var found: [Orphan] = []
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(".lock") {
            let base = directory + "/" + String(name.dropLast(".lock".count))
            let lock = open(directory + "/" + name, O_RDWR | O_CLOEXEC)
            guard lock >= 0 else { continue }
            guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {  // its gateway still runs
                Foundation.close(lock)
                continue
            }
            let segmentPrefix = String(base.dropFirst(directory.count + 1)) + "."
            let numbers = names.compactMap { name -> Int? in
                guard name.hasPrefix(segmentPrefix) else { return nil }
                return Int(name.dropFirst(segmentPrefix.count))
            }.sorted()
            var entries: [LedgerEntry] = []
            var damaged = 0, unreadable = 0
            let files = numbers.map { base + "." + String($0) }
            for file in files {
                let data = FileManager.default.contents(atPath: file) ?? Data()
                data.withUnsafeBytes { bytes in
                    let read = JournalRecord.read(bytes)
                    entries += read.entries
                    damaged += bytes.count - read.validBytes
                    unreadable += read.unreadable
                }
            }
            found.append(Orphan(lockFile: base + ".lock", segmentFiles: files, entries: entries,
                                damagedBytes: damaged, unreadable: unreadable, lockDescriptor: lock))
        }
        return found
    }
}

/// Plain `write` until all is written, no fsync (see the type's notes).
private func writeAll(_ bytes: [UInt8], to descriptor: Int32) -> Bool {
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = Foundation.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }
}

/// Rows a stopped gateway left in its journal that a tool could not record first
/// (`LedgerWriter.recordJournalsLeftBehind`).
public struct JournalLeftBehind: Error, CustomStringConvertible {
    public var description: String
}

/// What a start found in the journals of gateways that were gone.
public struct JournalReplay: Sendable, Equatable {
    /// Rows that were only in a journal, now committed.
    public var rows = 0
    /// Rows SQLite had already (committed before the gateway stopped).
    public var alreadyRecorded = 0
    /// Rows that could not commit: their journal stays for the next start.
    public var failed = 0
    /// Bytes after the last whole record of a segment (cut short by a power cut), skipped.
    public var damagedBytes = 0
    /// Records this build cannot read (written by a newer one): their journals stay.
    public var unreadable = 0

    public init() {}

    /// Throws unless every row left behind beside `path` went in: a tool that rewrites or copies
    /// the ledger would take those left for gone.
    public func requireWhole(beside path: String) throws {
        guard failed == 0, unreadable == 0 else {
            throw JournalLeftBehind(description: """
                a stopped gateway's journal beside \(path) could not be recorded in full (\(failed) rows \
                failed to commit, \(unreadable) written by a newer tokenctl): start `tokenctl serve` on this \
                ledger (of the newest version that wrote it) once, then run this again
                """)
        }
    }
}

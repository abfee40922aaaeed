import Foundation
import Ledger
import Metering
import NIOConcurrencyHelpers

/// Start markers of the calls in flight, so that a crash (kill -9, power cut of the process)
/// leaves a trace: at the next start, each marked call without a row is recorded as
/// `interrupted`, or with its final row when the call ended but the ledger failed until the
/// gateway stopped (`notRecorded`).
///
/// Why a file and not a row: a marker row would double the ledger's writes per call. Instead
/// the set of calls in flight is rewritten, when it changed, at most every `interval` to
/// `<ledger>.inflight-<instance>` (write to a temporary file, then rename: a reader sees a whole
/// file or the previous one). A call is therefore marked once it has been in flight for up to
/// `interval`; one that starts and is lost within that window leaves no trace (its client got
/// no complete answer either: invariant 1). A marker is removed when the call's row is
/// recorded (SQLite: in the ledger's journal, which the next start replays before these markers).
///
/// A running gateway holds an exclusive `flock` on `<journal>.lock` for its whole life; the
/// kernel drops it when the process dies, however it dies. Recovery takes only journals whose
/// lock it can take, so another live gateway on the same ledger (another container, whatever
/// its pid) is left alone.
final class InFlightJournal: @unchecked Sendable {
    struct Marker: Codable {
        var id: String
        var requestId: String
        var startedAt: Int64
        var keyId: String?
        var user: String?
        var team: String?
        var dialect: String
        var route: String
        var provider: String?
        var model: String?
        var stream: Bool
        var plan: String?
        /// The call's final row (a `JournalRecord`, base64) when it ended but could not be
        /// recorded (the ledger failing until the gateway stopped): the next start records it
        /// with its usage and cost, not as `interrupted`.
        var row: String?
    }

    let path: String
    let interval: TimeInterval
    /// The open lock file (held with `flock` until `stop`).
    private let lockDescriptor: Int32
    private let condition = NSCondition()
    private var markers: [String: Marker] = [:]
    private var dirty = false
    private var stopping = false
    private var stopped = false

    init(databasePath: String, interval: TimeInterval = 0.2) {
        var random = SystemRandomNumberGenerator()
        let instance = String(random.next(), radix: 36)
        path = databasePath + ".inflight-" + instance
        self.interval = interval
        lockDescriptor = open(path + ".lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        if lockDescriptor >= 0 { _ = flock(lockDescriptor, LOCK_EX | LOCK_NB) }
        let thread = Thread(named: "tokenctl-jrnl", priority: .standard) { [self] in run() }
        thread.start()
    }

    func started(_ entry: LedgerEntry) {
        condition.lock()
        started(entryLocked: entry)
        condition.unlock()
    }

    private func started(entryLocked entry: LedgerEntry) {
        markers[entry.id] = Marker(id: entry.id, requestId: entry.requestId, startedAt: entry.startedAt, keyId: entry.keyId,
                                   user: entry.user, team: entry.team, dialect: entry.dialect.rawValue, route: entry.route,
                                   provider: entry.provider, model: entry.modelRequested, stream: entry.stream, plan: entry.plan)
        dirty = true
    }

    /// The call ended but its row could not be recorded: keep the row with its marker.
    func notRecorded(_ entry: LedgerEntry) {
        var bytes: [UInt8] = []
        JournalRecord.append(entry, to: &bytes)
        condition.lock()
        if markers[entry.id] == nil { started(entryLocked: entry) }
        markers[entry.id]?.row = Data(bytes).base64EncodedString()
        dirty = true
        condition.unlock()
    }

    func ended(id: String) {
        condition.lock()
        if markers.removeValue(forKey: id) != nil { dirty = true }
        // The room a burst grew the table to goes once none of its calls is left in flight
        // (under a load that never empties it, the table stays at its peak).
        if markers.isEmpty, markers.capacity > 256 { markers = [:] }
        condition.unlock()
    }

    /// Room in the markers' table (tests read it).
    var markerCapacity: Int {
        condition.lock()
        defer { condition.unlock() }
        return markers.capacity
    }

    /// Stops the writer thread. The file is removed if every call was recorded; otherwise it is
    /// written one last time with the calls left without a row, for the next start to record.
    /// Returns how many were left: with their final row kept, and as start markers alone.
    @discardableResult
    func stop() -> (withRow: Int, markersOnly: Int) {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !stopped { condition.wait() }
        let left = Array(markers.values)
        condition.unlock()
        write(left)
        if left.isEmpty { unlink(path + ".lock") }
        if lockDescriptor >= 0 { close(lockDescriptor) }
        let withRow = left.filter { $0.row != nil }.count
        return (withRow, left.count - withRow)
    }

    private func run() {
        condition.lock()
        while !stopping {
            _ = condition.wait(until: Date(timeIntervalSinceNow: interval))
            guard dirty, !stopping else { continue }
            dirty = false
            let snapshot = Array(markers.values)
            condition.unlock()
            write(snapshot)
            condition.lock()
        }
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func write(_ snapshot: [Marker]) {
        guard !snapshot.isEmpty else {
            try? FileManager.default.removeItem(atPath: path)
            return
        }
        let encoder = JSONEncoder()
        var data = Data()
        for marker in snapshot {
            guard let line = try? encoder.encode(marker) else { continue }
            data.append(line)
            data.append(0x0A)
        }
        let temporary = path + ".tmp"
        guard writeWhole(data, to: temporary) else { return }
        _ = rename(temporary, path)
    }

    /// What `recover` wrote.
    struct Recovery {
        var rows = 0
        /// The kept final rows among them: calls that used the provider, whose shared budgets
        /// (PostgreSQL) may not have been charged yet.
        var keptRows: [LedgerEntry] = []
    }

    /// Whether a journal of a process that is gone lies beside `databasePath` (its lock free).
    static func hasMarkersLeft(databasePath: String) -> Bool {
        LedgerJournal.anyLeftBehind(beside: databasePath, infix: ".inflight-")
    }

    /// At start: records every marked call of a process that is gone and has no row, with its
    /// kept final row or as `interrupted` (a row that exists wins: the insert of a known call id
    /// is rejected), then removes those files.
    static func recover(databasePath: String, into ledger: any LedgerSink) -> Recovery {
        let directory = (databasePath as NSString).deletingLastPathComponent
        let prefix = (databasePath as NSString).lastPathComponent + ".inflight-"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory)) ?? []
        let written = Counter()
        let kept = NIOLockedValueBox<[LedgerEntry]>([])
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(".lock") {
            let lockFile = (directory.isEmpty ? "." : directory) + "/" + name
            let file = String(lockFile.dropLast(".lock".count))
            let lock = open(lockFile, O_RDWR | O_CLOEXEC)
            guard lock >= 0 else { continue }
            defer { close(lock) }
            guard flock(lock, LOCK_EX | LOCK_NB) == 0 else { continue }  // its gateway still runs
            let owner = String(name.dropFirst(prefix.count).dropLast(".lock".count))
            let lines = (FileManager.default.contents(atPath: file) ?? Data()).split(separator: 0x0A)
            let decoder = JSONDecoder()
            for line in lines {
                guard let marker = try? decoder.decode(Marker.self, from: line) else { continue }
                let row = entry(for: marker, instance: owner)
                ledger.append(row) { result in
                    switch result {
                    case .success:
                        written.increment()
                        if marker.row != nil { kept.withLockedValue { $0.append(row) } }
                    case .failure where marker.row != nil:
                        // The kept row could not be stored (or exists already: then this is refused
                        // too): the marker alone, as `interrupted`, rather than nothing.
                        var bare = marker
                        bare.row = nil
                        ledger.append(entry(for: bare, instance: owner)) { if case .success = $0 { written.increment() } }
                    case .failure: break
                    }
                }
            }
            ledger.flush()
            try? FileManager.default.removeItem(atPath: file)
            unlink(lockFile)
        }
        return Recovery(rows: written.value, keptRows: kept.withLockedValue { $0 })
    }

    static func entry(for marker: Marker, instance: String) -> LedgerEntry {
        if let row = marker.row, let bytes = Data(base64Encoded: row),
           var entry = bytes.withUnsafeBytes({ JournalRecord.read($0).entries.first }), entry.id == marker.id {
            let note = "recorded at the next start: its gateway (journal \(instance)) stopped while the ledger failed"
            entry.appendNote(note)
            return entry
        }
        return LedgerEntry(id: marker.id, requestId: marker.requestId, startedAt: marker.startedAt,
                    endedAt: marker.startedAt, keyId: marker.keyId, user: marker.user, team: marker.team,
                    dialect: Dialect(rawValue: marker.dialect) ?? .openai, route: marker.route,
                    provider: marker.provider, modelRequested: marker.model, stream: marker.stream,
                    status: 0, outcome: .interrupted,
                    errorMessage: "in flight when its gateway (journal \(instance)) stopped without recording it; recorded at the next start",
                    plan: marker.plan)
    }

    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func increment() { lock.lock(); count += 1; lock.unlock() }
        var value: Int { lock.lock(); defer { lock.unlock() }; return count }
    }
}

/// Plain write, no fsync: the journal must outlive a process kill, which the page cache does.
/// (Foundation's `createFile` fsyncs, and 5 fsyncs a second forced commits of the filesystem's
/// journal while the ledger appends to its WAL.)
private func writeWhole(_ data: Data, to file: String) -> Bool {
    let descriptor = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, SQLiteConnection.fileMode)
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    return data.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }
}

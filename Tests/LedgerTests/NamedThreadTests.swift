import Foundation
import Testing
@testable import Ledger
import LedgerTestSupport

/// Threads carry their names into the OS, where `top -H`, `perf` and `/proc` read them, and run
/// at their priority.
@Suite struct NamedThreadTests {
    /// The OS name of every thread of this process.
    static func threadNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap { task in
            try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// A standard thread keeps its creator's nice value; the others run at theirs. Waited
    /// for with a semaphore, not a continuation: resumed from a thread at nice 19, a continuation
    /// can have libdispatch start a worker there, which later tests' threads would inherit.
    @Test(arguments: [ThreadPriority.standard, .catchesUp, .housekeeping])
    func aNamedThreadRunsUnderItsNameAtItsPriority(_ priority: ThreadPriority) throws {
        let creator = ThreadPriority.currentNice
        let seen = Locked<(name: String?, nice: Int32)>((nil, .min))
        let done = DispatchSemaphore(value: 0)
        Thread(named: "tokenctl-test", priority: priority) {
            seen.withLock {
                $0 = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8), ThreadPriority.currentNice)
            }
            done.signal()
        }.start()
        done.wait()
        #expect(seen.withLock { $0.name } == "tokenctl-test\n")
        #if os(Linux)
        let wanted = priority.nice ?? creator
        #expect(seen.withLock { $0.nice } == wanted)
        #endif
    }

    /// The nice value of every thread of this process named `name` (field 19 of its stat).
    static func niceValues(ofThreadsNamed name: String) throws -> [Int32] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap { task in
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
                  comm.trimmingCharacters(in: .whitespacesAndNewlines) == name,
                  let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // After "pid (comm) ", the fields run from the 3rd (state); the 19th is nice.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 16 ? Int32(fields[16]) : nil
        }
    }

    @Test func theLedgerWriterAndItsCheckpointThreadRunUnderTheirNamesAndPriorities() throws {
        let creator = ThreadPriority.currentNice
        let directory = try TemporaryDirectory()
        let writer = try LedgerWriter(path: directory.path())
        defer { writer.close() }
        // Each thread names itself once it runs.
        let wanted: Set = ["tokenctl-ledger", "tokenctl-ckpt"]
        var names = Set(try Self.threadNames())
        let deadline = ContinuousClock.now + .seconds(10)
        while !wanted.isSubset(of: names) && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.01)
            names = Set(try Self.threadNames())
        }
        #expect(wanted.isSubset(of: names))
        // The writer must keep pace with the answers: it keeps its creator's priority (this
        // test's writer is among the writers, whose other creators may differ). The
        // checkpoints may lag: every checkpoint thread runs at 10.
        #if os(Linux)
        let writers = try Self.niceValues(ofThreadsNamed: "tokenctl-ledger")
        let checkpoints = try Self.niceValues(ofThreadsNamed: "tokenctl-ckpt")
        #expect(writers.contains(creator), "writers' nice values: \(writers), creator's: \(creator)")
        #expect(!checkpoints.isEmpty && checkpoints.allSatisfy { $0 == ThreadPriority.catchesUp.nice },
                "checkpoint threads' nice values: \(checkpoints)")
        #endif
    }
}

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

    @Test(arguments: [ThreadPriority.standard, .housekeeping])
    func aNamedThreadRunsUnderItsNameAtItsPriority(_ priority: ThreadPriority) async throws {
        let seen = Locked<(name: String?, nice: Int32)>((nil, -1))
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread(named: "tokenctl-test", priority: priority) {
                seen.withLock {
                    $0 = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8), ThreadPriority.currentNice)
                }
                done.resume()
            }.start()
        }
        #expect(seen.withLock { $0.name } == "tokenctl-test\n")
        #if os(Linux)
        #expect(seen.withLock { $0.nice } == priority.rawValue)
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
        // The writer must keep pace with the answers, the checkpoints may fall behind: every such
        // thread of this process (other tests' writers too) runs at that priority.
        #if os(Linux)
        let writers = try Self.niceValues(ofThreadsNamed: "tokenctl-ledger")
        let checkpoints = try Self.niceValues(ofThreadsNamed: "tokenctl-ckpt")
        #expect(!writers.isEmpty && writers.allSatisfy { $0 == ThreadPriority.standard.rawValue })
        #expect(!checkpoints.isEmpty && checkpoints.allSatisfy { $0 == ThreadPriority.housekeeping.rawValue })
        #endif
    }
}

import Foundation
import Testing
@testable import Ledger
import LedgerTestSupport

/// Threads carry their names into the OS, where `top -H`, `perf` and `/proc` read them.
@Suite struct NamedThreadTests {
    /// The OS name of every thread of this process.
    static func threadNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap { task in
            try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    @Test func aNamedThreadRunsUnderItsName() async throws {
        let seen = Locked<String?>(nil)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread(named: "tokenctl-test") {
                seen.withLock { $0 = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8) }
                done.resume()
            }.start()
        }
        #expect(seen.withLock { $0 } == "tokenctl-test\n")
    }

    @Test func theLedgerWriterAndItsCheckpointThreadAreNamed() throws {
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
    }
}

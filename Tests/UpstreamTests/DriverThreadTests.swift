#if os(Linux)
import Foundation
import Testing
@testable import Upstream

/// The curl thread carries its name into the OS, where `top -H`, `perf` and the benchmark's
/// per-thread CPU table (`bench/threads.sh`) find it.
@Suite struct DriverThreadTests {
    /// The OS name of the thread that runs it, as `/proc` shows it.
    private static func osName(ofThreadNamed name: String) -> String? {
        let seen = PThreadLock()
        nonisolated(unsafe) var comm: String?
        let thread = DriverThread(name: name) {
            let read = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
            seen.withLock { comm = read }
        }
        thread.join()
        return seen.withLock { comm }
    }

    @Test func itRunsUnderItsName() {
        #expect(Self.osName(ofThreadNamed: "tokenctl-curl") == "tokenctl-curl\n")
    }

    /// Linux keeps 15 bytes of a name and refuses a longer one whole: it is cut, not lost.
    @Test func aLongerNameIsCutTo15Bytes() {
        #expect(Self.osName(ofThreadNamed: "tokenctl-upstream-driver") == "tokenctl-upstre\n")
    }
}
#endif

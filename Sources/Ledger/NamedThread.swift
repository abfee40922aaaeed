import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension Thread {
    /// A thread (not started) that runs `body` under `name`, as `top -H`, `perf` and `/proc` show
    /// it (at most 15 bytes on Linux). Foundation on Linux does not reliably name the OS thread:
    /// named from outside before `start()`, every tokenctl thread showed as a dispatch worker
    /// (`oot.default-qos`) in profiles, and `Thread.current.name` set inside did not take in one
    /// CI run. So the thread names itself through the kernel first thing, as the curl thread does.
    package convenience init(named name: String, _ body: @escaping @Sendable () -> Void) {
        // A longer name is refused by the kernel.
        precondition(name.utf8.count <= 15, "thread name longer than 15 bytes: \(name)")
        self.init {
            Thread.nameCurrentOSThread(name)
            body()
        }
        self.name = name
    }

    private static func nameCurrentOSThread(_ name: String) {
        #if os(Linux)
        // Glibc hides pthread_setname_np behind _GNU_SOURCE; this file is what it writes.
        let fd = open("/proc/thread-self/comm", O_WRONLY)
        guard fd >= 0 else { return }
        _ = Array(name.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        #else
        Thread.current.name = name
        #endif
    }
}

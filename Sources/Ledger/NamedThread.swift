import CThreadName
import Foundation

extension Thread {
    /// A thread (not started) that runs `body` under `name`, as `top -H`, `perf` and `/proc` show
    /// it (at most 15 bytes on Linux). Foundation on Linux does not reliably name the OS thread:
    /// named from outside before `start()`, every tokenctl thread showed as a dispatch worker
    /// (`oot.default-qos`) in profiles, and `Thread.current.name` set inside did not take in one
    /// CI run. So the thread names itself first thing, as the curl thread does.
    package convenience init(named name: String, _ body: @escaping @Sendable () -> Void) {
        // A longer name would be cut short.
        precondition(name.utf8.count <= 15, "thread name longer than 15 bytes: \(name)")
        self.init {
            tokenctl_name_current_thread(name)
            body()
        }
        self.name = name
    }
}

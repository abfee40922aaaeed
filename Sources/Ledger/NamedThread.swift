import Foundation

extension Thread {
    /// A thread (not started) that runs `body` under `name`, as `top -H`, `perf` and `/proc` show
    /// it (at most 15 bytes on Linux). Foundation on Linux names the OS thread only when the name
    /// is set from the thread itself: named from outside before `start()`, every tokenctl thread
    /// showed as a dispatch worker (`oot.default-qos`) in profiles.
    package convenience init(named name: String, _ body: @escaping @Sendable () -> Void) {
        // A longer name is refused by the kernel, and Foundation drops it silently.
        precondition(name.utf8.count <= 15, "thread name longer than 15 bytes: \(name)")
        self.init {
            Thread.current.name = name
            body()
        }
        self.name = name
    }
}

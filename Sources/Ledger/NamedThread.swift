import CThreadName
import Foundation

/// How readily one of our threads gives its core up to the threads that carry answers (the event
/// loops and the curl thread). With the gateway on one core, a ledger commit (about a
/// millisecond) or a checkpoint's copy (several) that held the core made every answer due
/// meanwhile wait behind it: bench/sched.sh found the ledger writer running for most of the
/// event loop's waits over 0.5 ms at 15,000 calls/s. A higher nice value lets the kernel run the
/// woken event loop first, while the thread still gets its share of the core over time.
package enum ThreadPriority: Int32, Sendable {
    /// Answers wait for it: the default (the PostgreSQL writer, whose commits answers wait for).
    case answers = 0
    /// No answer waits for it, but it must keep pace with them (the SQLite ledger writer, the
    /// in-flight journal): at nice 5 it still gets about a seventh of a core the event loop and
    /// the curl thread keep busy; the writer needs about a tenth at their full rate.
    case keepsPace = 5
    /// Work that may fall behind under load (checkpoints: the writer's own catch-up and forced
    /// checkpoints bound the WAL meanwhile; the key and policy pollers).
    case housekeeping = 19

    /// The calling thread's nice value.
    package static var currentNice: Int32 { Int32(tokenctl_current_thread_nice()) }
}

extension Thread {
    /// A thread (not started) that runs `body` under `name`, as `top -H`, `perf` and `/proc` show
    /// it (at most 15 bytes on Linux), at `priority`. Foundation on Linux does not reliably name
    /// the OS thread: named from outside before `start()`, every tokenctl thread showed as a
    /// dispatch worker (`oot.default-qos`) in profiles, and `Thread.current.name` set inside did
    /// not take in one CI run. So the thread names itself first thing, as the curl thread does,
    /// after setting its own priority (Linux keeps one per thread).
    package convenience init(named name: String, priority: ThreadPriority,
                             _ body: @escaping @Sendable () -> Void) {
        // A longer name would be cut short.
        precondition(name.utf8.count <= 15, "thread name longer than 15 bytes: \(name)")
        self.init {
            // Raising one's own nice value needs no privilege; should it fail, the thread only
            // keeps the default. Before the name: a thread seen under its name has its priority.
            if priority != .answers { _ = tokenctl_set_current_thread_nice(priority.rawValue) }
            tokenctl_name_current_thread(name)
            body()
        }
        self.name = name
    }
}

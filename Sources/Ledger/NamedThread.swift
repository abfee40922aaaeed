import CThreadName
import Foundation

/// How readily one of our threads gives its core up to the threads that carry answers (the event
/// loops and the curl thread). With the gateway on one core, a checkpoint's copy (several
/// milliseconds) that held the core made every answer due meanwhile wait behind it. At a higher
/// nice value the kernel gives a woken event loop the core sooner; the thread still gets its
/// (smaller) share.
package enum ThreadPriority: Sendable {
    /// The creating thread's (lowering a nice value needs privilege): the threads answers wait
    /// for, and those that must keep pace with them (the ledger writers, the in-flight journal).
    /// At nice 5 the SQLite writer fell 80,000 rows behind with four event loops on one core at
    /// saturation, as in a container given less CPU than it has cores.
    case standard
    /// Nice 10: work that may lag under load but must keep up over time, the checkpoint thread.
    /// At 19 it fell so far behind at saturation that the writer forced checkpoints that held
    /// commits (0.6 s in a minute; the WAL grew to 124 MB).
    case catchesUp
    /// Nice 19: work that may fall behind under load, the key and policy pollers (they swap
    /// their snapshot under their lock and free the old one after it, so no call waits on them).
    case housekeeping

    /// The nice value the thread sets itself to; nil keeps its creator's.
    package var nice: Int32? {
        switch self {
        case .standard: nil
        case .catchesUp: 10
        case .housekeeping: 19
        }
    }

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
            // keeps its creator's. Before the name: a thread seen under its name has its priority.
            if let nice = priority.nice { _ = tokenctl_set_current_thread_nice(nice) }
            tokenctl_name_current_thread(name)
            body()
        }
        self.name = name
    }
}

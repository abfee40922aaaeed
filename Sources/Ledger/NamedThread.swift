import CThreadName
import Foundation

/// How readily one of our threads gives its core up to the threads that carry answers (the event
/// loops and the curl thread). With the gateway on one core, a checkpoint's copy (several
/// milliseconds) that held the core made every answer due meanwhile wait behind it. At a higher
/// nice value the kernel gives a woken event loop the core sooner; the thread still gets its
/// (smaller) share. `.standard` keeps the creating thread's value (lowering one needs privilege).
package enum ThreadPriority: Int32, Sendable {
    /// The creator's (0 by default): the threads answers wait for, and those that must keep pace with them (the
    /// ledger writers, the in-flight journal). At nice 5 the SQLite writer kept up with one
    /// event loop per core but fell 80,000 rows behind with four event loops on one core at
    /// saturation (as in a container given less CPU than it has cores); at 0 it kept up.
    case standard = 0
    /// Work that may lag under load but must keep up over time: the checkpoint thread. At 19,
    /// with everything on one core at saturation, it fell so far behind that the WAL grew to
    /// 124 MB and the writer forced 4 checkpoints that held commits for 0.6 s in a minute
    /// (at 0: 35 MB, none forced).
    case catchesUp = 10
    /// Work that may fall behind under load: the key and policy pollers (they swap their
    /// snapshot under their lock and free the old one after it, so no call waits on them).
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
            if priority != .standard { _ = tokenctl_set_current_thread_nice(priority.rawValue) }
            tokenctl_name_current_thread(name)
            body()
        }
        self.name = name
    }
}

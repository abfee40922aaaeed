#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import NIOConcurrencyHelpers
import NIOCore

/// Gives the heap a busy spell freed back to the OS. Checked every `interval`: once calls in
/// flight have fallen to half of the last check's, or to none after a busy spell.
///
/// glibc keeps what thousands of closed streams or a burst of calls freed in its arenas, so the
/// process's RSS stays at its peak; `malloc_trim` returns the free pages (off the event loops:
/// it walks every arena). The tokenctl executable runs on mimalloc instead, which returns a
/// thread's pages as they empty, but only on that thread: a page whose blocks another thread
/// freed (a ledger row made on an event loop and freed by the writer, a body chunk made on the
/// curl thread and freed by an event loop) empties when its own thread next looks, and a thread
/// idle after a burst does not look. So `mi_collect` runs on each thread that allocates for
/// calls (`allocatingThreads`: the event loops and the curl thread), and once off them for
/// what threads that ended left behind.
final class MemoryReturn: Sendable {
    /// Runs a closure on one thread of the process.
    typealias Thread = @Sendable (@escaping @Sendable () -> Void) -> Void

    /// How the process's allocator gives free memory back.
    enum GiveBack: Sendable {
        /// On every allocating thread, and once off them (mimalloc's `mi_collect`; `force`: also
        /// the thread's cached segments, and what threads that ended left).
        case onEachThread(@Sendable (_ force: Bool) -> Void)
        /// Once, from any thread (glibc's `malloc_trim`).
        case once(@Sendable () -> Void)
        case none

        /// The allocator this process runs on, looked up at run time: this library does not
        /// link an allocator (the executable does), Swift's Glibc module does not import
        /// <malloc.h>, and another C library may lack `malloc_trim`.
        static let ofThisProcess: GiveBack = {
            #if canImport(Glibc)
            let process = UnsafeMutableRawPointer(bitPattern: 0)
            if let symbol = dlsym(process, "mi_collect") {
                let collect = unsafeBitCast(symbol, to: (@convention(c) (Bool) -> Void).self)
                return .onEachThread { collect($0) }
            }
            if let symbol = dlsym(process, "malloc_trim") {
                let mallocTrim = unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
                return .once { _ = mallocTrim(0) }
            }
            #endif
            return .none
        }()
    }

    private struct State {
        var lastInFlight = 0
        var trimmedSinceBusy = true
    }

    private let state = NIOLockedValueBox(State())
    private let task = NIOLockedValueBox<RepeatedTask?>(nil)

    init(on loop: any EventLoop, allocatingThreads: [Thread], giveBack: GiveBack = .ofThisProcess,
         interval: TimeAmount = .seconds(2), inFlight: @escaping @Sendable () -> Int) {
        let repeated = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [state] _ in
            let now = inFlight()
            let trim = state.withLockedValue { s -> Bool in
                defer { s.lastInFlight = now }
                if now > 0 { s.trimmedSinceBusy = false }
                let fell = s.lastInFlight >= 8 && now <= s.lastInFlight / 2
                let idle = now == 0 && !s.trimmedSinceBusy
                if fell || idle { s.trimmedSinceBusy = now == 0 }
                return fell || idle
            }
            guard trim else { return }
            switch giveBack {
            case .onEachThread(let collect):
                // Forced once no call is in flight; while calls still run (in flight halved, as
                // a gateway that always holds a few streams never reaches none), a plain collect
                // frees the pages that emptied and keeps the thread's cached segments for them.
                let force = now == 0
                for thread in allocatingThreads { thread { collect(force) } }
                DispatchQueue.global(qos: .utility).async { collect(true) }
            case .once(let trim):
                DispatchQueue.global(qos: .utility).async(execute: trim)
            case .none:
                break
            }
        }
        task.withLockedValue { $0 = repeated }
    }

    func stop() {
        task.withLockedValue { $0?.cancel(); $0 = nil }
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import NIOConcurrencyHelpers
import NIOCore

/// Gives the heap a busy spell freed back to the OS. glibc keeps what thousands of closed streams
/// or a burst of calls freed in its arenas, so the process's RSS stays at its peak;
/// `malloc_trim` returns the free pages. The tokenctl executable runs on mimalloc instead, whose
/// threads return their own pages as they empty (the executable sets no delay); its
/// `mi_collect` here frees what threads that ended left behind. Checked every `interval`: once
/// calls in flight have fallen to half of the last check's or to none after a busy spell, trim,
/// off the event loops (it walks every arena).
final class MemoryReturn: Sendable {
    private struct State {
        var lastInFlight = 0
        var trimmedSinceBusy = true
    }

    private let state = NIOLockedValueBox(State())
    private let task = NIOLockedValueBox<RepeatedTask?>(nil)

    init(on loop: any EventLoop, interval: TimeAmount = .seconds(2), inFlight: @escaping @Sendable () -> Int) {
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
            if trim { DispatchQueue.global(qos: .utility).async(execute: Self.trim) }
        }
        task.withLockedValue { $0 = repeated }
    }

    func stop() {
        task.withLockedValue { $0?.cancel(); $0 = nil }
    }

    /// The allocator's trim, looked up at run time: this library does not link an allocator (the
    /// executable does), Swift's Glibc module does not import <malloc.h>, and another C library
    /// may lack `malloc_trim` (then nothing is trimmed).
    private static let trim: @Sendable () -> Void = {
        #if canImport(Glibc)
        let process = UnsafeMutableRawPointer(bitPattern: 0)
        if let symbol = dlsym(process, "mi_collect") {
            let collect = unsafeBitCast(symbol, to: (@convention(c) (Bool) -> Void).self)
            return { collect(true) }
        }
        if let symbol = dlsym(process, "malloc_trim") {
            let mallocTrim = unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
            return { _ = mallocTrim(0) }
        }
        #endif
        return {}
    }()
}

import Synchronization

/// Answers held until a test lets them go (`x-fake-hold: NAME`, `FakeLLMServer.release(NAME)`):
/// a call stays in flight for exactly as long as the test needs it, however slowly a loaded
/// machine runs the test. A fixed delay could end first (a full suite on two cores once took
/// over 8 s between two steps of one test).
final class HeldAnswers: Sendable {
    private struct State {
        var released: Set<String> = []
        var waiting: [String: [@Sendable () -> Void]] = [:]
    }

    private let state = Mutex(State())

    /// Runs `go` once `name` is released: at once if it already was.
    func hold(_ name: String, then go: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if state.released.contains(name) { return true }
            state.waiting[name, default: []].append(go)
            return false
        }
        if now { go() }
    }

    /// How many answers wait under `name`.
    func waiting(_ name: String) -> Int {
        state.withLock { $0.waiting[name]?.count ?? 0 }
    }

    /// Lets every answer held under `name` go, now and from now on.
    func release(_ name: String) {
        let held = state.withLock { state -> [@Sendable () -> Void] in
            state.released.insert(name)
            return state.waiting.removeValue(forKey: name) ?? []
        }
        for go in held { go() }
    }
}

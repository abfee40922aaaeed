import Ledger
import Logging
import NIOConcurrencyHelpers

/// Whether the ledger is taking writes. A failed commit attempt (disk full, file unwritable,
/// locked by another process past the busy timeout) marks it failing until a transaction
/// commits again. While it fails the gateway fails closed: new model calls get 503 at once —
/// unbilled use is not allowed — while the rows already accepted stay queued in the writer,
/// which keeps retrying, so none is lost. Each turn, failing and back, is logged once.
final class LedgerHealth: Sendable {
    struct Failure: Sendable {
        let since: Int64
        let message: String
        let attempts: Int
        /// What callers and `/healthz` are told instead, when `message` names a path.
        var shown: String? = nil

        /// `message` for callers and `/healthz`, which need no key: a PostgreSQL location in it
        /// (`postgres://user@host:port/database`) reads `PostgreSQL` (the log has it whole).
        var publicMessage: String { shown ?? Self.withoutLocations(message) }

        static func withoutLocations(_ text: String) -> String {
            var rest = Substring(text), out = ""
            while let start = [rest.range(of: "postgres://"), rest.range(of: "postgresql://")].compactMap({ $0 })
                .min(by: { $0.lowerBound < $1.lowerBound }) {
                out += rest[..<start.lowerBound] + "PostgreSQL"
                var end = rest[start.upperBound...].firstIndex(where: { $0 == " " || $0 == "," || $0 == ")" }) ?? rest.endIndex
                if end > start.upperBound, rest[rest.index(before: end)] == ":" { end = rest.index(before: end) }
                rest = rest[end...]
            }
            return out + rest
        }
    }

    private let failure = NIOLockedValueBox<Failure?>(nil)
    /// PostgreSQL's shared quota heartbeat failing: its ledger is the same server, so a row
    /// would not commit either. Counts from the second failure in a row (one can be a busy
    /// connection or a reset one); cleared by the next heartbeat that gets through.
    private let unreachable = NIOLockedValueBox<Failure?>(nil)

    /// A SQLite ledger's file deleted or replaced under the gateway (`LedgerFileIdentity`).
    private let fileGone = NIOLockedValueBox<Failure?>(nil)

    var current: Failure? {
        fileGone.withLockedValue { $0 } ?? failure.withLockedValue { $0 }
            ?? unreachable.withLockedValue { $0.flatMap { $0.attempts >= 2 ? $0 : nil } }
    }
    var isFailing: Bool { current != nil }

    private static let unreachableMessage = "PostgreSQL does not answer (the log says why)"
    private let logger: Logger

    init(logger: Logger = Logger(label: "tokenctl.ledger")) {
        self.logger = logger
    }

    /// A shared quota heartbeat's outcome (nil: it got through).
    func heartbeat(_ error: (any Error)?) {
        update(unreachable, .heartbeat, detail: error.map { "\($0)" } ?? "", threshold: 2) { current in
            error.map { _ in
                Failure(since: current?.since ?? UnixTime.nowMicros(), message: Self.unreachableMessage,
                        attempts: (current?.attempts ?? 0) + 1)
            }
        }
    }

    /// A look at the ledger file's path (nil: it still names the open file).
    func fileChecked(_ problem: String?) {
        update(fileGone, .file, detail: problem ?? "") { current in
            problem.map {
                Failure(since: current?.since ?? UnixTime.nowMicros(), message: $0, attempts: 1,
                        shown: "the ledger file was deleted or replaced while open (the log says which)")
            }
        }
    }

    /// Moves one cause's failure to `next(current)` and logs the turn, if this made one: it
    /// fails from its `threshold`-th attempt, and is back once cleared.
    private func update(_ box: NIOLockedValueBox<Failure?>, _ source: Source, detail: String, threshold: Int = 1,
                        _ next: (Failure?) -> Failure?) {
        let turn = box.withLockedValue { current -> Turn? in
            let before = current
            current = next(before)
            switch ((before?.attempts ?? 0) >= threshold, (current?.attempts ?? 0) >= threshold) {
            case (false, true): return .failing(source, detail)
            case (true, false): return before.map { .recovered(source, since: $0.since) }
            default: return nil
            }
        }
        log(turn)
    }

    /// What failed: a commit, PostgreSQL's heartbeat, or the ledger file's name.
    private enum Source {
        case commits, heartbeat, file

        var failing: String {
            switch self {
            case .commits: return "the ledger is failing: new calls are refused (503 ledger_unavailable) until it commits again"
            case .heartbeat: return "the ledger is failing: PostgreSQL does not answer; new calls are refused (503 ledger_unavailable) until it does"
            case .file: return "the ledger file is gone: new calls are refused (503 ledger_unavailable) until it is back"
            }
        }

        var recovered: String {
            switch self {
            case .commits: return "the ledger commits again"
            case .heartbeat: return "PostgreSQL answers again"
            case .file: return "the ledger file is back"
            }
        }
    }

    private enum Turn {
        case failing(Source, String)
        case recovered(Source, since: Int64)
    }

    private func log(_ turn: Turn?) {
        switch turn {
        case .failing(let source, let message)?:
            logger.error("\(source.failing)", metadata: ["error": "\(message)"])
        case .recovered(let source, let since)?:
            let seconds = Double(UnixTime.nowMicros() - since) / 1_000_000
            // Only when nothing else still fails are calls accepted again.
            let state = current.map { "calls are still refused (\($0.publicMessage))" } ?? "calls are accepted"
            logger.notice("\(source.recovered): \(state)", metadata: ["failing_seconds": "\((seconds * 10).rounded() / 10)"])
        case nil:
            break
        }
    }

    /// The writer options with health tracking added to `options`' own callbacks.
    func tracking(_ options: LedgerWriter.Options) -> LedgerWriter.Options {
        var options = options
        let failedBefore = options.onCommitFailure, committedBefore = options.onBatchCommitted
        options.onCommitFailure = { [failure, self] error, attempt in
            update(failure, .commits, detail: "\(error)") { current in
                Failure(since: current?.since ?? UnixTime.nowMicros(), message: "\(error)", attempts: attempt)
            }
            failedBefore?(error, attempt)
        }
        options.onBatchCommitted = { [failure, self] rows, duration in
            update(failure, .commits, detail: "") { _ in nil }
            committedBefore?(rows, duration)
        }
        return options
    }

    /// What a refused caller is told.
    var refusal: Refusal {
        Refusal(.ledgerUnavailable,
                "The gateway cannot record calls right now (its ledger is failing: \(current?.publicMessage ?? "unknown")); it accepts none until it can. Retry shortly.",
                headers: [("retry-after", "5")])
    }
}

import Foundation

/// A progress line on stderr for work that runs longer than a second (`export`, `policy
/// simulate`): silent before that, then `\r<verb> N rows` at most twice a second, and a final
/// line ending in a newline once something was shown or the work took over a second. Quick runs
/// print nothing, so scripts reading stderr see no noise; when stderr is not a terminal (a cron
/// job's log, a pipe) only the final line is written: the `\r` updates would pile up in one line.
public final class ProgressLine {
    private let verb: String
    private let write: (String) -> Void
    private let clock: () -> TimeInterval
    private let started: TimeInterval
    private var lastShown: TimeInterval
    private let interactive: Bool
    private var shown = false

    /// `write`, `interactive` and `clock` default to stderr, whether it is a terminal, and the
    /// monotonic uptime; tests pass their own.
    public init(_ verb: String,
                write: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) },
                interactive: Bool = isatty(STDERR_FILENO) == 1,
                clock: @escaping () -> TimeInterval = { ProcessInfo.processInfo.systemUptime }) {
        self.verb = verb
        self.write = write
        self.interactive = interactive
        self.clock = clock
        started = clock()
        lastShown = started
    }

    /// Cheap enough to call per row: it looks at the clock only every 4096 counts.
    public func update(_ count: Int) {
        guard interactive, count % 4_096 == 0 else { return }
        let now = clock()
        guard now - started > 1, now - lastShown > 0.5 else { return }
        write("\r\(verb) \(count) rows")
        lastShown = now
        shown = true
    }

    public func finish(_ count: Int) {
        guard shown || clock() - started > 1 else { return }
        write((interactive ? "\r" : "") + "\(verb) \(count) rows\n")
    }
}

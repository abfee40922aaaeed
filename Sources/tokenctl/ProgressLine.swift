import Foundation

/// A progress line on stderr for work that runs longer than a second (`export`, `policy
/// simulate`): silent before that, then `\r<verb> N rows` at most twice a second, and a final
/// line with a newline when the work is done. Quick runs print nothing.
final class ProgressLine {
    private let verb: String
    private let started = Date()
    private var lastShown: Date
    private var shown = false

    init(_ verb: String) {
        self.verb = verb
        lastShown = started
    }

    /// Cheap enough to call per row: it looks at the clock only every 4096 counts.
    func update(_ count: Int) {
        guard count % 4_096 == 0 else { return }
        let now = Date()
        guard now.timeIntervalSince(started) > 1, now.timeIntervalSince(lastShown) > 0.5 else { return }
        FileHandle.standardError.write(Data("\r\(verb) \(count) rows".utf8))
        lastShown = now
        shown = true
    }

    func finish(_ count: Int) {
        if shown || Date().timeIntervalSince(started) > 1 {
            FileHandle.standardError.write(Data("\r\(verb) \(count) rows\n".utf8))
        }
    }
}

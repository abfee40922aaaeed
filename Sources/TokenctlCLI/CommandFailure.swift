import ArgumentParser
import Foundation

/// A failure the user can act on: printed as `error: …` on stderr, exit 1, no usage text
/// (ArgumentParser's `ValidationError` would append the usage line, which does not help here).
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The ledger file of commands that only read or change an existing ledger: a mistyped path
/// must not quietly create an empty one.
func existingLedger(_ path: String) throws -> String {
    guard FileManager.default.fileExists(atPath: path) else {
        throw CommandFailure("no ledger at \(path) (start `tokenctl serve` or create a key first, or pass --db)")
    }
    return path
}

extension FileHandle {
    /// Writes all of `data`, or fails as a command: a reader that went away (`| head`) ends the
    /// command quietly with status 141, as SIGPIPE would (the PostgreSQL client ignores SIGPIPE,
    /// and the legacy `write(_:)` traps on the error instead).
    func writeOrFail(_ data: Data, to name: String = "stdout") throws {
        do {
            try write(contentsOf: data)
        } catch {
            let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError ?? (error as NSError)
            if underlying.domain == NSPOSIXErrorDomain && underlying.code == Int(EPIPE) { exit(141) }
            throw CommandFailure("cannot write \(name): \(underlying.localizedDescription)")
        }
    }
}

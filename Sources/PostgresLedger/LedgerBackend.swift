import Foundation
import Ledger

/// Which ledger a `--db` value names: a file path is a SQLite ledger (one node, the default), a
/// `postgres://` URL a PostgreSQL one (several replicas, one ledger). Opens the writer, readers
/// and key store of either behind the `LedgerSink`/`LedgerSource`/`APIKeyStore` protocols.
public enum LedgerBackend: Sendable, Hashable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(PostgresLocation)

    public init(_ db: String) throws {
        self = PostgresLocation.isPostgresURL(db) ? .postgres(try PostgresLocation(url: db)) : .sqlite(path: db)
    }

    /// A SQLite ledger's file.
    public var sqlitePath: String? {
        if case .sqlite(let path) = self { return path }
        return nil
    }

    public var isPostgres: Bool {
        if case .postgres = self { return true }
        return false
    }

    /// The path, or the URL without its password (for logs and messages).
    public var description: String {
        switch self {
        case .sqlite(let path): return path
        case .postgres(let location): return location.description
        }
    }

    /// The ledger's writer; creates and migrates the ledger if needed.
    public func openSink(options: LedgerWriter.Options = LedgerWriter.Options()) throws -> any LedgerSink {
        switch self {
        case .sqlite(let path): return try LedgerWriter(path: path, options: options)
        case .postgres(let location): return try PostgresLedgerWriter(location: location, options: options)
        }
    }

    /// A reader. SQLite: the file must exist. `readOnly`: the connection refuses writes (for
    /// readers that serve untrusted requests). `forOneCommand`: PostgreSQL reports of a period
    /// reuse one copy of its calls (see `PostgresLedgerReader.report`); for a command that
    /// reads and exits, not for a server.
    public func openSource(readOnly: Bool = false, forOneCommand: Bool = false) throws -> any LedgerSource {
        switch self {
        case .sqlite(let path): return try LedgerReader(path: path, readOnly: readOnly)
        case .postgres(let location):
            return try PostgresLedgerReader(location: location, readOnly: readOnly, reusesReportCopies: forOneCommand)
        }
    }

    public func openKeys() throws -> any APIKeyStore {
        switch self {
        case .sqlite(let path): return try KeyStore(path: path)
        case .postgres(let location): return try PostgresKeyStore(location: location)
        }
    }

    /// Where the in-flight journal of a server goes: beside a SQLite file (as always); for
    /// PostgreSQL, which has no local file, in `directory` under a name per database, so two
    /// ledgers' journals never mix.
    public func journalBase(directory: String) -> String {
        switch self {
        case .sqlite(let path): return path
        case .postgres(let l):
            let name = "pg-\(l.host)-\(l.port)-\(l.database)".map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" }
            return (directory as NSString).appendingPathComponent(String(name))
        }
    }
}

import Foundation
import PostgresNIO

/// Where a PostgreSQL ledger lives, from a `postgres://user[:password]@host[:port]/database` URL
/// (`postgresql://` too; `?sslmode=disable|prefer|require`, default disable: the server is
/// expected on a private network or loopback; `prefer` is accepted, as libpq's URLs carry it,
/// but also connects without TLS: `require` is the only mode with TLS). A URL without a
/// password takes `PGPASSWORD` from the environment, as libpq does, so that the secret need not
/// appear on a command line (where `ps` shows it).
public struct PostgresLocation: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var requireTLS: Bool

    /// Whether `text` names a PostgreSQL ledger rather than a SQLite file.
    public static func isPostgresURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    public init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard Self.isPostgresURL(text), let url = URLComponents(string: text), let host = url.host, !host.isEmpty else {
            throw PostgresLocationError(text: text, reason: "expected postgres://user@host[:port]/database")
        }
        self.host = host
        port = url.port ?? 5432
        user = url.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
        password = url.password.flatMap { $0.removingPercentEncoding } ?? environment["PGPASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
        let path = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        database = path.isEmpty ? user : path
        let mode = url.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable"
        switch mode {
        case "disable", "prefer": requireTLS = false
        case "require": requireTLS = true
        default: throw PostgresLocationError(text: text, reason: "sslmode must be disable, prefer or require")
        }
    }

    /// The URL without the password, for logs and messages.
    public var description: String { "postgres://\(user)@\(host):\(port)/\(database)" }

    public var connectionConfiguration: PostgresConnection.Configuration {
        PostgresConnection.Configuration(host: host, port: port, username: user, password: password,
                                         database: database, tls: requireTLS ? .require(try! .init(configuration: .makeClientConfiguration())) : .disable)
    }
}

public struct PostgresLocationError: Error, CustomStringConvertible {
    public var text: String
    public var reason: String
    public var description: String { "invalid PostgreSQL URL: \(reason)" }
}

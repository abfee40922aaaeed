import Foundation
import Ledger
import Metering
@testable import PostgresLedger
import XCTest

/// A fresh database per test on the test server, dropped by `drop()`, so tests do not see each other's rows.
final class ScratchDatabase: @unchecked Sendable {
    let location: PostgresLocation
    let url: String
    private let admin: PostgresSession
    private let name: String

    init(file: StaticString = #filePath, line: UInt = #line) throws {
        let base = try PostgresLocation(url: try TestDatabase.requireURL(file: file, line: line))
        admin = try PostgresSession(base)
        name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try admin.execute("CREATE DATABASE \(name)")
        var location = base
        location.database = name
        self.location = location
        url = "postgres://\(base.user)@\(base.host):\(base.port)/\(name)"
    }

    func drop() {
        try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        admin.close()
    }
}

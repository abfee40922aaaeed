import Crypto
import Foundation
@testable import PostgresLedger
import XCTest

/// The shared quota functions' SQL against its version (no server needed).
final class SharedQuotaSchemaTests: XCTestCase {
    /// The digest of `SharedQuotaSchema.functions` at each version. Replicas install functions
    /// only over an older version, so a change to their SQL under the same version would let
    /// the old and new bodies replace each other as replicas restart. When this fails: raise
    /// `functionsVersion` and record the new digest here.
    private let digests: [Int64: String] = [
        1: "a75e5bc2d0ec7d4e0ad3e93ee7972f04335d54b9738f91da865b8b066bdfb885",
        2: "a80bf4a60f4a2b7c11614268b3183be0fb021a8a56c81ed34680e07d16e83d35",  // holds inserted per batch
    ]

    func testFunctionsChangeOnlyWithTheirVersion() {
        let sql = SharedQuotaSchema.functions.joined(separator: "\n;\n")
        let digest = SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined()
        XCTAssertEqual(digests[SharedQuotaSchema.functionsVersion], digest,
                       "the functions' SQL changed: raise functionsVersion and record this digest for it")
    }
}

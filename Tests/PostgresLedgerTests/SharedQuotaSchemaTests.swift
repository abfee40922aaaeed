import Crypto
import Foundation
@testable import PostgresLedger
import XCTest

/// The shared quota functions' SQL against its version (no server needed).
final class SharedQuotaSchemaTests: XCTestCase {
    /// The digest of the shared quota SQL (tables and functions) at each version since 3 (1 and 2
    /// held the functions alone). Replicas install functions
    /// only over an older version, so a change to their SQL under the same version would let
    /// the old and new bodies replace each other as replicas restart. When this fails: raise
    /// `functionsVersion` and record the new digest here.
    private let digests: [Int64: String] = [
        3: "8a982a8023a3e818181925e77b8aec98587ca5a0b5699edfee3c53b967652b6e",
    ]

    func testFunctionsChangeOnlyWithTheirVersion() {
        // The tables too: the functions read and write their columns.
        let sql = (SharedQuotaSchema.tables + SharedQuotaSchema.functions).joined(separator: "\n;\n")
        let digest = SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined()
        XCTAssertEqual(digests[SharedQuotaSchema.functionsVersion], digest,
                       "the functions' SQL changed: raise functionsVersion and record this digest for it")
    }
}

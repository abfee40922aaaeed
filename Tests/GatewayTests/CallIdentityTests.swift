import Foundation
import Ledger
import Testing
@testable import Gateway

/// The ledger row id and the `x-request-id` a call gets.
@Suite struct CallIdentityTests {
    private static func isLowerHex(_ text: Substring) -> Bool {
        text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }

    @Test func callIDsAreTheTimeThenRandomBitsInHex() {
        let before = UInt64(UnixTime.nowMicros())
        let ids = (0..<1_000).map { _ in CallIdentity.newCallID() }
        let after = UInt64(UnixTime.nowMicros())
        #expect(Set(ids).count == ids.count, "unique")
        for id in ids {
            #expect(id.utf8.count == 32 && Self.isLowerHex(id[...]), "\(id)")
            let time = UInt64(id.prefix(16), radix: 16) ?? 0
            #expect(time >= before && time <= after, "starts with the time in µs: \(id)")
        }
        #expect(ids.map { $0.prefix(16) } == ids.map { $0.prefix(16) }.sorted(), "time-ordered")
    }

    /// A made request id is `req_` and the call's id, which the ledger finds through the row's id.
    @Test func requestIDsAreTheClientsWhenPrintableElseTheCallsID() {
        let callID = CallIdentity.newCallID()
        #expect(CallIdentity.requestID(fromClient: "trace-42/abc", callID: callID) == "trace-42/abc")
        for client in [nil, "", "has space", "tab\there", String(repeating: "x", count: 129), "é"] as [String?] {
            #expect(CallIdentity.requestID(fromClient: client, callID: callID) == "req_" + callID)
        }
        let longest = String(repeating: "x", count: 128)
        #expect(CallIdentity.requestID(fromClient: longest, callID: callID) == longest)
    }
}

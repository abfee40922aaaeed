import Testing
@testable import Ledger

/// The retry tracker's compact id orders calls exactly as their id strings do.
@Suite struct CallOrderKeyTests {
    @Test func theGatewaysIdsAreHeldAsIntegersInTheirStringsOrder() {
        var generator = SystemRandomNumberGenerator()
        func hexID() -> String {
            // Time-ordered like CallIdentity's, with ties in the first half now and then.
            let time = UInt64.random(in: 0..<4, using: &generator)
            let random = generator.next()
            func digits(_ v: UInt64) -> String { let d = String(v, radix: 16); return String(repeating: "0", count: 16 - d.count) + d }
            return digits(time) + digits(random)
        }
        let ids = (0..<500).map { _ in hexID() } + ["call-1", "call-10", "call-2", "", "0", "ffff", hexID().uppercased(),
                                                     "req_" + hexID(), String(repeating: "g", count: 32)]
        let keys = ids.map(CallOrderKey.init)
        for (id, key) in zip(ids, keys) {
            #expect(key.id == id)
            if id.count == 32, id.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) {
                guard case .hex = key else { Issue.record("\(id) kept as a string"); continue }
            } else {
                guard case .other = key else { Issue.record("\(id) read as hex"); continue }
            }
        }
        for _ in 0..<5_000 {
            let i = Int.random(in: 0..<ids.count), j = Int.random(in: 0..<ids.count)
            #expect((keys[i] < keys[j]) == (ids[i] < ids[j]), "\(ids[i]) vs \(ids[j])")
        }
        #expect(keys.sorted().map(\.id) == ids.sorted())
    }
}

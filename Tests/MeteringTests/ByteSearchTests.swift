import Testing
@testable import Metering

@Suite struct ByteSearchTests {
    /// The word-at-a-time searches agree with a plain loop on every position and byte value.
    @Test func agreesWithNaiveSearch() {
        var generator = SystemRandomNumberGenerator()
        let interesting: [UInt8] = [0x00, 0x0A, 0x0D, 0x1F, 0x20, 0x21, 0x22, 0x5C, 0x7B, 0x7F, 0x80, 0xA2, 0xFF]
        for trial in 0..<2000 {
            let count = Int.random(in: 0...40, using: &generator)
            let bytes: [UInt8] = (0..<count).map { _ in
                trial % 2 == 0 ? UInt8.random(in: 0...255, using: &generator)
                    : (Bool.random(using: &generator) ? interesting.randomElement(using: &generator)! : UInt8(ascii: "a"))
            }
            let start = Int.random(in: 0...count, using: &generator)
            bytes.withUnsafeBytes { raw in
                let special = bytes[start...].firstIndex { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 || $0 >= 0x80 } ?? count
                #expect(ByteSearch.stringSpecial(raw, from: start) == special)
                let lineEnd = bytes[start...].firstIndex { $0 == 0x0A || $0 == 0x0D } ?? count
                #expect(ByteSearch.lineEnd(raw, from: start) == lineEnd)
                let brace = bytes[start...].firstIndex(of: 0x7B) ?? count
                #expect(ByteSearch.first(0x7B, in: raw, from: start) == brace)
            }
        }
    }
}

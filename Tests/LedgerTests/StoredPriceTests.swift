import Ledger
import Metering
import Testing

@Suite struct StoredPriceTests {
    @Test("a price id read back from a row names the same entry, a tier's and a long prompt's included")
    func roundTrip() throws {
        for (tier, above) in [(nil, nil), ("priority", nil), (nil, 200_000), ("fast", 200_000)] as [(String?, Int?)] {
            let price = ModelPrice(model: ModelPattern("org@x/model-*"), effectiveFrom: Day("2025-09-29")!,
                                   input: Money(picodollars: 3), cachedInput: Money(picodollars: 1),
                                   cacheWrite: Money(picodollars: 4), output: Money(picodollars: 15),
                                   tier: tier, aboveInputTokens: above)
            let read = try StoredPrice.decode(id: price.id, input: 3, cachedInput: 1, cacheWrite: 4, cacheWrite1h: 6,
                                              output: 15, callId: "c")
            #expect(read?.id == price.id)
            #expect(read?.tier == tier && read?.aboveInputTokens == above)
            #expect(read?.runsInUSOnly == false)
            // The same entry's price for calls run in the US only.
            let usOnly = price.inUSOnly(times: try #require(PriceMultiplier("1.1")))
            let readUS = try StoredPrice.decode(id: usOnly.id, input: 3, cachedInput: 1, cacheWrite: 4, cacheWrite1h: 7,
                                                output: 17, callId: "c")
            #expect(readUS?.id == usOnly.id && readUS?.runsInUSOnly == true, "\(usOnly.id)")
            #expect(readUS?.tier == tier && readUS?.aboveInputTokens == above)
        }
        #expect(try StoredPrice.decode(id: "m fast+us-only above-200000@2025-09-29", input: 1, cachedInput: 1, cacheWrite: 1,
                                       cacheWrite1h: nil, output: 1, callId: "c")?.tier == "fast")
        for bad in ["m @2025-09-29", "m above-x@2025-09-29", "m above-1 fast@2025-09-29", "m a b@2025-09-29", "m a b c@2025-09-29", "m", "m fast@2025-09-29/x",
                    "m us-only us-only@2025-09-29", "m us-only fast@2025-09-29", "m above-1 us-only@2025-09-29",
                    "m +us-only@2025-09-29", "m us-only+us-only@2025-09-29", "m fast++us-only@2025-09-29"] {
            #expect(throws: LedgerError.self, "\(bad)") {
                try StoredPrice.decode(id: bad, input: 1, cachedInput: 1, cacheWrite: 1, cacheWrite1h: nil, output: 1, callId: "c")
            }
        }
    }
}

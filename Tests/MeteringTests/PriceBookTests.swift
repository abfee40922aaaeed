import Foundation
import Testing
@testable import Metering

@Suite struct PriceBookTests {
    func price(_ pattern: String, _ from: String, input: String, cached: String = "0", write: String = "0",
               output: String = "0") -> ModelPrice {
        ModelPrice(model: ModelPattern(pattern), effectiveFrom: Day(from)!,
                   input: ModelPrice.perToken(fromPerMillion: input)!, cachedInput: ModelPrice.perToken(fromPerMillion: cached)!,
                   cacheWrite: ModelPrice.perToken(fromPerMillion: write)!, output: ModelPrice.perToken(fromPerMillion: output)!)
    }

    /// A price shares its fields between copies (`SharedFields`) until one changes.
    @Test func aChangedCopyLeavesTheOriginalAsItWas() {
        let original = price("gpt-4o", "2024-05-13", input: "2.5", output: "10")
        var copy = original
        copy.input = Money(picodollars: 1)
        copy.source = "elsewhere"
        #expect(original.input == ModelPrice.perToken(fromPerMillion: "2.5"))
        #expect(original.source == "")
        #expect(copy.input == Money(picodollars: 1) && copy.source == "elsewhere")
        #expect(copy != original && copy.id == original.id)
        #expect(Set([original, price("gpt-4o", "2024-05-13", input: "2.5", output: "10"), copy]).count == 2)
    }

    @Test func aPriceEncodesAndDecodesWhole() throws {
        let entry = ModelPrice(model: ModelPattern("claude-*"), effectiveFrom: Day("2025-01-01")!,
                               input: Money(picodollars: 3_000_000), cachedInput: Money(picodollars: 300_000),
                               cacheWrite: Money(picodollars: 3_750_000), output: Money(picodollars: 15_000_000),
                               webSearchPreview: Money(picodollars: 25_000_000_000), audioInput: Money(picodollars: 7),
                               source: "https://example.com", tier: "fast", aboveInputTokens: 200_000)
        let decoded = try JSONDecoder().decode(ModelPrice.self, from: JSONEncoder().encode(entry))
        #expect(decoded == entry)
        #expect(decoded.id == "claude-* fast above-200000@2025-01-01")
        let usOnly = entry.inUSOnly(times: try #require(PriceMultiplier("1.1")))
        #expect(try JSONDecoder().decode(ModelPrice.self, from: JSONEncoder().encode(usOnly)) == usOnly)
    }

    @Test func exactBeatsGlobAndSpecificBeatsLoose() {
        let book = PriceBook([
            price("gpt-4o*", "2024-01-01", input: "5"),
            price("gpt-4o-mini*", "2024-01-01", input: "0.15"),
            price("gpt-4o-mini", "2023-01-01", input: "0.1"),
            price("*", "2020-01-01", input: "99"),
        ])
        let day = Day("2025-01-01")!
        #expect(book.price(for: "gpt-4o-mini", on: day)?.id == "gpt-4o-mini@2023-01-01")
        #expect(book.price(for: "gpt-4o-mini-2024-07-18", on: day)?.id == "gpt-4o-mini*@2024-01-01")
        #expect(book.price(for: "gpt-4o-2024-08-06", on: day)?.id == "gpt-4o*@2024-01-01")
        #expect(book.price(for: "claude-3", on: day)?.id == "*@2020-01-01")
        #expect(PriceBook().price(for: "x", on: day) == nil)
        // Before its exact price takes effect, a model falls back to the globs in force.
        #expect(book.price(for: "gpt-4o-mini", on: Day("2022-06-01")!)?.id == "*@2020-01-01")
    }

    @Test("a tier's and a long prompt's prices are picked by the call; a tier without a price falls back to the standard one, said so")
    func variants() throws {
        func variant(_ pattern: String, _ from: String, input: String, tier: String? = nil, above: Int? = nil) -> ModelPrice {
            let p = price(pattern, from, input: input)
            return ModelPrice(model: p.model, effectiveFrom: p.effectiveFrom, input: p.input, cachedInput: p.cachedInput,
                              cacheWrite: p.cacheWrite, output: p.output, tier: tier, aboveInputTokens: above)
        }
        let book = PriceBook([
            price("gpt-5", "2025-08-07", input: "1.25"),
            variant("gpt-5", "2025-08-07", input: "2.5", tier: "priority"),
            variant("gpt-5", "2026-01-01", input: "3", tier: "priority"),
            price("claude-sonnet-4-*", "2025-05-14", input: "3"),
            variant("claude-sonnet-4-*", "2025-05-14", input: "6", above: 200_000),
            variant("claude-sonnet-4-*", "2025-05-14", input: "9", above: 500_000),
        ])
        let day = Day("2025-12-01")!
        // The standard lookup never answers with a variant.
        #expect(book.price(for: "gpt-5", on: day)?.id == "gpt-5@2025-08-07")
        let gpt5 = book.pricing(for: "gpt-5", on: day)
        #expect(gpt5.price(tier: nil, promptTokens: 900_000).price?.id == "gpt-5@2025-08-07")
        #expect(gpt5.price(tier: "priority", promptTokens: 10) .price?.id == "gpt-5 priority@2025-08-07")
        #expect(gpt5.price(tier: "priority", promptTokens: 10).tierPriced)
        #expect(book.pricing(for: "gpt-5", on: Day("2026-02-01")!).price(tier: "priority", promptTokens: 10).price?.id
                == "gpt-5 priority@2026-01-01")
        let flex = gpt5.price(tier: "flex", promptTokens: 10)
        #expect(flex.price?.id == "gpt-5@2025-08-07" && !flex.tierPriced)
        // A variant goes with the standard entry of its own pattern only: gpt-5-nano is charged
        // by `gpt-5-nano*`, so `gpt-5*`'s priority price is not nano's.
        let scoped = PriceBook([
            price("gpt-5*", "2025-08-07", input: "1.25"),
            price("gpt-5-nano*", "2025-08-07", input: "0.05"),
            variant("gpt-5*", "2025-08-07", input: "2.5", tier: "priority"),
            price("m", "2025-01-01", input: "1"),
            variant("m", "2025-01-01", input: "6", tier: "fast", above: 200_000),
        ])
        let nano = scoped.pricing(for: "gpt-5-nano", on: day).price(tier: "priority", promptTokens: 10)
        #expect(nano.price?.id == "gpt-5-nano*@2025-08-07" && !nano.tierPriced)
        #expect(scoped.pricing(for: "gpt-5-mini", on: day).price(tier: "priority", promptTokens: 10).price?.id
                == "gpt-5* priority@2025-08-07")
        // A tier priced only over a threshold: priced for such prompts, not for smaller ones.
        let m = scoped.pricing(for: "m", on: day)
        #expect(m.price(tier: "fast", promptTokens: 300_000) .tierPriced)
        #expect(!m.price(tier: "fast", promptTokens: 1_000).tierPriced)
        #expect(scoped.variants(of: scoped.price(for: "m", on: day)!).map(\.id) == ["m fast above-200000@2025-01-01"])
        let sonnet = book.pricing(for: "claude-sonnet-4-5", on: day)
        #expect(sonnet.price(tier: nil, promptTokens: 200_000).price?.id == "claude-sonnet-4-*@2025-05-14")
        #expect(sonnet.price(tier: nil, promptTokens: 200_001).price?.id == "claude-sonnet-4-* above-200000@2025-05-14")
        #expect(sonnet.price(tier: nil, promptTokens: 600_000).price?.id == "claude-sonnet-4-* above-500000@2025-05-14")
        #expect(sonnet.price(tier: "fast", promptTokens: 600_000).price?.id == "claude-sonnet-4-* above-500000@2025-05-14")
        #expect(Pricing(standard: nil).price(tier: nil, promptTokens: 1).price == nil)
        let both = variant("m", "2025-01-01", input: "1", tier: "fast", above: 200_000)
        #expect(both.id == "m fast above-200000@2025-01-01" && both.isVariant)
    }

    @Test("web searches cost their fee each, $10 per 1,000 unless the entry says otherwise")
    func webSearchFees() {
        var p = price("m", "2025-01-01", input: "1", output: "2")
        #expect(p.webSearch == ModelPrice.defaultWebSearch)
        #expect(p.cost(of: Usage(inputTokens: 10, outputTokens: 5, webSearches: 3)) == Money(picodollars: 10 * 1_000_000 + 5 * 2_000_000 + 3 * 10_000_000_000))
        p.webSearch = ModelPrice.perCall(fromPerThousand: "25")!
        #expect(p.webSearch == Money(picodollars: 25_000_000_000))
        #expect(ModelPrice.perCall(fromPerThousand: "0.000001") == Money(picodollars: 1_000))
        #expect(p.worstCase(inputTokens: 1, outputTokens: 1) == Money(picodollars: 3_000_000))
    }

    @Test("the preview web search tool's searches cost its fee where the entry has one; with both tools, the dearer")
    func previewSearchFee() {
        var p = price("gpt-4o", "2024-08-06", input: "1", output: "2")
        p.webSearchPreview = ModelPrice.perCall(fromPerThousand: "25")!
        let preview = TokenKinds(webSearches: 2, previewWebSearch: true)
        #expect(p.withSearchFee(for: preview).webSearch == Money(picodollars: 25_000_000_000))
        #expect(p.withSearchFee(for: TokenKinds(webSearches: 2, currentWebSearch: true)).webSearch == ModelPrice.defaultWebSearch)
        #expect(p.withSearchFee(for: TokenKinds(previewWebSearch: true, currentWebSearch: true)).webSearch
                == Money(picodollars: 25_000_000_000))
        #expect(p.worstCase(inputTokens: 1, outputTokens: 1, kinds: preview) == Money(picodollars: 3_000_000 + 2 * 25_000_000_000))
        // Without a preview fee of its own, the entry's web search fee.
        let plain = price("o3", "2025-04-16", input: "1", output: "2")
        #expect(plain.withSearchFee(for: preview).webSearch == ModelPrice.defaultWebSearch)
    }

    @Test("file search calls cost their fee each, $2.50 per 1,000 unless the entry says otherwise; the worst case holds them")
    func fileSearchFees() {
        var p = price("m", "2025-01-01", input: "1", output: "2")
        #expect(p.fileSearch == ModelPrice.defaultFileSearch && p.fileSearch == Money(picodollars: 2_500_000_000))
        #expect(p.cost(of: Usage(inputTokens: 10, outputTokens: 5, webSearches: 1, fileSearches: 3))
                == Money(picodollars: 10 * 1_000_000 + 5 * 2_000_000 + 10_000_000_000 + 3 * 2_500_000_000))
        p.fileSearch = ModelPrice.perCall(fromPerThousand: "3")!
        #expect(p.worstCase(inputTokens: 1, outputTokens: 1, kinds: TokenKinds(fileSearches: 4))
                == Money(picodollars: 3_000_000 + 4 * 3_000_000_000))
    }

    @Test("one max_tool_calls over both search tools: the worst case holds that many searches in all, the dearer fee's first")
    func sharedToolCallLimit() {
        var p = price("m", "2025-01-01", input: "1", output: "2")
        let both = TokenKinds(webSearches: 3, fileSearches: 3, sharedToolCalls: 3)
        #expect(p.reservedSearches(both) == (3, 0))
        #expect(p.worstCase(inputTokens: 1, outputTokens: 1, kinds: both) == Money(picodollars: 3_000_000 + 3 * 10_000_000_000))
        // Fewer web searches than the limit (a tool's max_uses): the rest are file searches.
        #expect(p.reservedSearches(TokenKinds(webSearches: 1, fileSearches: 3, sharedToolCalls: 3)) == (1, 2))
        // A file search fee above the web one: file searches first.
        p.fileSearch = ModelPrice.perCall(fromPerThousand: "20")!
        #expect(p.reservedSearches(both) == (0, 3))
        // The preview tool's fee decides which is dearer.
        p.webSearchPreview = ModelPrice.perCall(fromPerThousand: "25")!
        #expect(p.reservedSearches(TokenKinds(webSearches: 3, fileSearches: 3, previewWebSearch: true, sharedToolCalls: 3)) == (3, 0))
        // No shared limit: each its own count.
        #expect(p.reservedSearches(TokenKinds(webSearches: 10, fileSearches: 10)) == (10, 10))
    }

    @Test("audio tokens, parts of the input and output, cost the audio prices; without them, the text prices")
    func audioTokens() {
        var p = price("m", "2025-01-01", input: "1", output: "2")
        let usage = Usage(inputTokens: 100, outputTokens: 50, audioInputTokens: 40, audioOutputTokens: 30)
        #expect(p.cost(of: usage) == Money(picodollars: 100 * 1_000_000 + 50 * 2_000_000))
        p.audioInput = Money(picodollars: 32_000_000)
        p.audioOutput = Money(picodollars: 64_000_000)
        #expect(p.cost(of: usage) == Money(picodollars: 60 * 1_000_000 + 40 * 32_000_000 + 20 * 2_000_000 + 30 * 64_000_000))
        // A part above its whole is the whole.
        #expect(p.cost(of: Usage(inputTokens: 10, outputTokens: 5, audioInputTokens: 99, audioOutputTokens: 99))
                == Money(picodollars: 10 * 32_000_000 + 5 * 64_000_000))
        // The worst case: the request's audio at the audio price, every output token when it
        // asks for an audio answer.
        #expect(p.worstCase(inputTokens: 100, outputTokens: 50) == Money(picodollars: 100 * 1_000_000 + 50 * 2_000_000))
        #expect(p.worstCase(inputTokens: 100, outputTokens: 50, kinds: TokenKinds(audioInputTokens: 40, audioAnswer: true))
                == Money(picodollars: 60 * 1_000_000 + 40 * 32_000_000 + 50 * 64_000_000))
    }

    @Test("a call run in the US only pays the entry's multiple of every token price, not of the search fees; a tier's entry without one takes its standard entry's")
    func usOnly() throws {
        let multiple = try #require(PriceMultiplier("1.1"))
        #expect(multiple.millionths == 1_100_000 && multiple.description == "1.1")
        #expect(PriceMultiplier("2")?.description == "2" && PriceMultiplier("1.000001")?.description == "1.000001")
        for bad in ["0", "0.0", "10.000001", "1.1.1", "", "-1", "1.0000001"] { #expect(PriceMultiplier(bad) == nil, "\(bad)") }
        // Rounded half up to a whole pico-dollar per token: 3 x 1.5 = 4.5 -> 5; 1 x 1.1 = 1.1 -> 1.
        #expect(PriceMultiplier("1.5")!.applied(to: Money(picodollars: 3)) == Money(picodollars: 5))
        #expect(multiple.applied(to: Money(picodollars: 1)) == Money(picodollars: 1))
        #expect(multiple.applied(to: Money(picodollars: .max)) == Money(picodollars: .max))

        func entry(_ pattern: String, tier: String? = nil, input: Int64, usOnly: PriceMultiplier?) -> ModelPrice {
            ModelPrice(model: ModelPattern(pattern), effectiveFrom: Day("2025-11-01")!,
                       input: Money(picodollars: input), cachedInput: Money(picodollars: input / 10),
                       cacheWrite: Money(picodollars: input * 5 / 4), output: Money(picodollars: input * 5),
                       tier: tier, usOnlyMultiple: usOnly)
        }
        let book = PriceBook([entry("claude-opus-4-6", input: 5_000_000, usOnly: multiple),
                              entry("claude-opus-4-6", tier: "fast", input: 30_000_000, usOnly: nil),
                              entry("claude-opus-4-5", input: 5_000_000, usOnly: nil)])
        let pricing = book.pricing(for: "claude-opus-4-6", on: Day("2026-01-01")!)
        let (us, tierPriced, usOnlyPriced) = pricing.price(tier: nil, promptTokens: 10, usOnly: true)
        #expect(tierPriced && usOnlyPriced)
        #expect(us?.id == "claude-opus-4-6 us-only@2025-11-01" && us?.runsInUSOnly == true)
        #expect(us?.input.picodollars == 5_500_000 && us?.cachedInput.picodollars == 550_000)
        #expect(us?.cacheWrite.picodollars == 6_875_000 && us?.cacheWrite1h.picodollars == 11_000_000)
        #expect(us?.output.picodollars == 27_500_000 && us?.webSearch == pricing.standard?.webSearch)
        #expect(us?.fileSearch == pricing.standard?.fileSearch)
        let usage = Usage(inputTokens: 1000, cachedInputTokens: 200, cacheWriteTokens: 300, outputTokens: 50, webSearches: 2)
        #expect(us?.cost(of: usage) == Money(picodollars: (1000 * 5_500_000 + 200 * 550_000 + 300 * 6_875_000 + 50 * 27_500_000)
                                             + 2 * 10_000_000_000))
        #expect(pricing.price(tier: nil, promptTokens: 10, usOnly: false).price?.id == "claude-opus-4-6@2025-11-01")
        // Fast mode's entry has no multiple of its own: its standard entry's applies.
        let fast = pricing.price(tier: "fast", promptTokens: 10, usOnly: true)
        #expect(fast.price?.id == "claude-opus-4-6 fast+us-only@2025-11-01" && fast.usOnlyPriced)
        #expect(fast.price?.input.picodollars == 33_000_000)
        // A model without one: the global price, said so.
        let plain = book.pricing(for: "claude-opus-4-5", on: Day("2026-01-01")!).price(tier: nil, promptTokens: 10, usOnly: true)
        #expect(plain.price?.id == "claude-opus-4-5@2025-11-01" && !plain.usOnlyPriced && plain.tierPriced)
        #expect(InferenceGeo.runsInUSOnly(served: nil, requested: "us"))
        #expect(InferenceGeo.runsInUSOnly(served: "us", requested: nil))
        #expect(!InferenceGeo.runsInUSOnly(served: "global", requested: "us"))
        #expect(!InferenceGeo.runsInUSOnly(served: "not_available", requested: nil))
        #expect(InferenceGeo.mayRunInUSOnly(requested: nil) && !InferenceGeo.mayRunInUSOnly(requested: "global"))
    }

    @Test func latestEffectivePriceOnTheDay() {
        let book = PriceBook([
            price("claude-sonnet-4*", "2025-05-22", input: "3"),
            price("claude-sonnet-4*", "2025-09-01", input: "2.5"),
            price("claude-sonnet-4*", "2026-01-01", input: "2"),
        ])
        #expect(book.price(for: "claude-sonnet-4-5", on: Day("2025-05-21")!) == nil)
        #expect(book.price(for: "claude-sonnet-4-5", on: Day("2025-05-22")!)?.input.picodollars == 3_000_000)
        #expect(book.price(for: "claude-sonnet-4-5", on: Day("2025-08-31")!)?.input.picodollars == 3_000_000)
        #expect(book.price(for: "claude-sonnet-4-5", on: Day("2025-09-01")!)?.input.picodollars == 2_500_000)
        #expect(book.price(for: "claude-sonnet-4-5", on: Day("2030-01-01")!)?.input.picodollars == 2_000_000)
        #expect(book.covers("claude-sonnet-4-0"))
        #expect(!book.covers("claude-opus-4"))
    }

    @Test func costIsExactForAwkwardPrices() {
        let p = price("gemini-flash", "2024-01-01", input: "0.075", cached: "0.0375", write: "3.75", output: "0.30")
        let usage = Usage(inputTokens: 1_234_567, cachedInputTokens: 333_333, cacheWriteTokens: 7, outputTokens: 999_999)
        let cost = p.cost(of: usage)
        #expect(cost?.picodollars == 405_118_462_500)
        #expect(cost?.formatted(decimals: 12) == "0.405118462500")
        // One token at $0.075 per million is 75,000 pd: exact, no rounding.
        #expect(p.cost(of: Usage(inputTokens: 1))?.picodollars == 75_000)
        #expect(p.cost(of: Usage(cacheWriteTokens: 3))?.picodollars == 11_250_000)
        #expect(p.cost(of: .zero) == Money.zero)
    }

    /// Anthropic: 5-minute writes at `cache_write` (1.25× input), 1-hour ones at twice the input.
    @Test("1-hour cache writes are charged at their own price; the worst case of a caching call at the dearest write")
    func hourWrites() {
        let p = price("claude-sonnet-4-5", "2025-09-29", input: "3", cached: "0.30", write: "3.75", output: "15")
        #expect(p.cacheWrite1h.picodollars == 6_000_000)
        let usage = Usage(inputTokens: 10, cachedInputTokens: 100, cacheWriteTokens: 1_000, cacheWrite1hTokens: 600,
                          outputTokens: 20)
        let expected: Int64 = 10 * 3_000_000 + 100 * 300_000 + 400 * 3_750_000 + 600 * 6_000_000 + 20 * 15_000_000
        #expect(p.cost(of: usage)?.picodollars == expected)
        // A 1-hour count above the writes is the writes.
        #expect(p.cost(of: Usage(cacheWriteTokens: 5, cacheWrite1hTokens: 9)) == p.cost(of: Usage(cacheWriteTokens: 5, cacheWrite1hTokens: 5)))
        #expect(p.worstCase(inputTokens: 1_000, outputTokens: 100).picodollars == 1_000 * 3_000_000 + 100 * 15_000_000)
        #expect(p.worstCase(inputTokens: 1_000, outputTokens: 100, kinds: TokenKinds(writesPromptCache: true)).picodollars
                == 1_000 * 6_000_000 + 100 * 15_000_000)
        // An entry without a 1-hour price has twice its input: the bound of any caching call.
        let flat = price("gpt-4o", "2024-05-13", input: "2.5", cached: "1.25", write: "2.5", output: "10")
        #expect(flat.worstCase(inputTokens: 10, outputTokens: 0, kinds: TokenKinds(writesPromptCache: true)).picodollars == 10 * 5_000_000)
    }

    @Test func overflowOrNegativeIsNil() {
        let p = price("o1-pro", "2024-01-01", input: "150", output: "600")
        #expect(p.cost(of: Usage(outputTokens: 15_372_286_728)) != nil)  // ≈ $9.22M, just fits
        #expect(p.cost(of: Usage(outputTokens: 15_372_286_729)) == nil)
        #expect(p.cost(of: Usage(inputTokens: Int.max)) == nil)
        #expect(p.cost(of: Usage(inputTokens: 61_489_146_912, outputTokens: 1)) == nil)  // sum overflows
        #expect(p.cost(of: Usage(inputTokens: -1)) == nil)
    }

    @Test func modelPatterns() {
        #expect(ModelPattern("claude-3-5-haiku-*").matches("claude-3-5-haiku-20241022"))
        #expect(!ModelPattern("claude-3-5-haiku-*").matches("claude-3-5-sonnet-20241022"))
        #expect(ModelPattern("*mini*").matches("gpt-4o-mini-2024"))
        #expect(ModelPattern("a*b*c").matches("abbbc") && !ModelPattern("a*b*c").matches("abcb"))
        #expect(ModelPattern("*").matches("") && !ModelPattern("a").matches("") && ModelPattern("**x").matches("abx"))
        #expect(ModelPattern("gpt-4o").matches("gpt-4o") && !ModelPattern("gpt-4o").matches("gpt-4o-mini"))
        #expect(!ModelPattern("gpt-4o-mini").matches("gpt-4o") && ModelPattern("*-mini").matches("gpt-4o-mini"))
        #expect(ModelPattern("gpt-4o").isExact && !ModelPattern("gpt-*").isExact)
        #expect(ModelPattern("gpt-*").specificity == 4)
    }
}

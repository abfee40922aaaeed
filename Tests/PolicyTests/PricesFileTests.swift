import Metering
import Testing
@testable import Policy

@Suite struct PricesFileTests {
    @Test func eachPriceProblemNamesItsLineAndField() throws {
        let fixture = try PolicyFixture.with(prices: """
            - model: gpt-4o-mini
              effective_from: "2024-07-18"
              input: 0.15
              output: "-0.60"
            - { model: "gpt-4o", effective_from: "2024-13-01", input: "2.5", output: "10.0000001" }
            - { model: "gpt-4.1", effective_from: 2025-04-14, input: "$2", output: "8", cached_input: "0.5.1" }
            - { model: "gpt-4.1", effective_from: 2025-04-14, input: "2", output: "8" }
            - { model: "gpt-4.1", effective_from: 2025-04-14, input: "2", output: "8", currency: "EUR" }
            - { effective_from: "2025-01-01", input: "1" }
            - "gpt-5"
            - { model: "gpt-5", effective_from: "2025-08-07", input: "99999999999999", output: "" }
            """)
        #expect(fixture.problems() == [
            "prices.yaml:3: prices[0].input: write the price as a quoted string, \"0.15\": bare YAML numbers are floats and may not be exact",
            "prices.yaml:4: prices[0].output: negative price '-0.60'",
            "prices.yaml:5: prices[1].effective_from: bad date '2024-13-01' (expected YYYY-MM-DD)",
            "prices.yaml:5: prices[1].output: '10.0000001' has more than six decimals",
            "prices.yaml:6: prices[2].input: '$2' is not a decimal number of dollars per 1M tokens, e.g. \"0.15\"",
            "prices.yaml:6: prices[2].cached_input: '0.5.1' is not a decimal number of dollars per 1M tokens, e.g. \"0.15\"",
            "prices.yaml:8: prices[4].currency: unknown key 'currency' (expected model, effective_from, input, cached_input, cache_write, cache_write_1h, output, audio_input, audio_output, web_search, web_search_preview, file_search, us_only, source, tier or above_input_tokens)",
            "prices.yaml:8: prices[4].effective_from: duplicate of the entry at line 7 (same model and effective_from)",
            "prices.yaml:9: prices[5].model: missing required field",
            "prices.yaml:9: prices[5].output: missing required field",
            "prices.yaml:10: prices[6]: expected a mapping, found string 'gpt-5'",
            "prices.yaml:11: prices[7].input: '99999999999999' is too large",
            "prices.yaml:11: prices[7].output: '' is not a decimal number of dollars per 1M tokens, e.g. \"0.15\"",
        ])
    }

    @Test("a tier's or a long prompt's price: read beside the standard one, which it needs; an unknown tier is a problem")
    func variants() throws {
        let prices = """
            - { model: "gpt-5", effective_from: "2025-08-07", input: "1.25", output: "10" }
            - { model: "gpt-5", tier: priority, effective_from: "2025-08-07", input: "2.5", output: "20" }
            - { model: "claude-sonnet-4-5", effective_from: "2025-09-29", input: "3", output: "15" }
            - { model: "claude-sonnet-4-5", above_input_tokens: 200000, effective_from: "2025-09-29", input: "6", output: "22.5" }
            """
        #expect(try PolicyFixture.with(prices: prices).problems() == [])
        let book = try PolicyFixture.with(prices: prices).load().prices
        let day = Day("2026-01-01")!
        #expect(book.price(for: "gpt-5", on: day)?.id == "gpt-5@2025-08-07")
        #expect(book.pricing(for: "gpt-5", on: day).price(tier: "priority", promptTokens: 10).price?.id
                == "gpt-5 priority@2025-08-07")
        #expect(book.pricing(for: "claude-sonnet-4-5", on: day).price(tier: nil, promptTokens: 200_001).price?.id
                == "claude-sonnet-4-5 above-200000@2025-09-29")

        let bad = try PolicyFixture.with(prices: """
            - { model: "gpt-5", effective_from: "2025-08-07", input: "1.25", output: "10" }
            - { model: "gpt-5", tier: turbo, effective_from: "2025-08-07", input: "2.5", output: "20" }
            - { model: "gpt-4.1", tier: flex, effective_from: "2025-04-14", input: "1", output: "4" }
            - { model: "gpt-5", above_input_tokens: 0, effective_from: "2025-08-07", input: "2.5", output: "20" }
            - { model: "gpt-5", tier: flex, effective_from: "2025-08-07", input: "0.625", output: "5" }
            - { model: "gpt-5", tier: flex, effective_from: "2025-08-07", input: "0.6", output: "5" }
            - { model: "o3", effective_from: "2025-04-16", input: "2", output: "8", us_only: "0" }
            - { model: "o3", tier: flex, effective_from: "2025-04-16", input: "1", output: "4" }
            """)
        // The broken standard entry of o3 is said once: its tier's entry is not blamed for it.
        #expect(bad.problems() == [
            "prices.yaml:2: prices[1].tier: unknown tier 'turbo' (expected fast, flex or priority)",
            "prices.yaml:3: prices[2].model: a price for a tier or a long prompt only, without a standard entry for 'gpt-4.1' (the calls that are neither would have no price)",
            "prices.yaml:4: prices[3].above_input_tokens: 0 is out of range (1...100000000)",
            "prices.yaml:6: prices[5].effective_from: duplicate of the entry at line 5 (same model and effective_from)",
            "prices.yaml:7: prices[6].us_only: '0' is not a multiple over 0 and at most 10, e.g. \"1.1\"",
        ])
    }

    @Test("us_only is a quoted multiple of every token price over 0 and at most 10; absent, none")
    func usOnlyMultiple() throws {
        let book = try PolicyFixture.with(prices: """
            - { model: "claude-opus-4-6", effective_from: "2025-11-01", input: "5", output: "25", us_only: "1.1" }
            - { model: "claude-opus-4-5", effective_from: "2025-11-01", input: "5", output: "25" }
            """).load().prices
        let day = Day("2026-01-01")!
        #expect(book.price(for: "claude-opus-4-6", on: day)?.usOnlyMultiple == PriceMultiplier(millionths: 1_100_000))
        #expect(book.pricing(for: "claude-opus-4-6", on: day).price(tier: nil, promptTokens: 1, usOnly: true).price?.input
                == Money(picodollars: 5_500_000))
        #expect(book.price(for: "claude-opus-4-5", on: day)?.usOnlyMultiple == nil)
        let bad = try PolicyFixture.with(prices: """
            - { model: "a", effective_from: "2025-11-01", input: "1", output: "1", us_only: 1.1 }
            - { model: "b", effective_from: "2025-11-01", input: "1", output: "1", us_only: "0" }
            - { model: "c", effective_from: "2025-11-01", input: "1", output: "1", us_only: "11" }
            - { model: "d", effective_from: "2025-11-01", input: "1", output: "1", us_only: "1.1x" }
            """)
        #expect(bad.problems() == [
            "prices.yaml:1: prices[0].us_only: write the multiple as a quoted string, \"1.1\": bare YAML numbers are floats and may not be exact",
            "prices.yaml:2: prices[1].us_only: '0' is not a multiple over 0 and at most 10, e.g. \"1.1\"",
            "prices.yaml:3: prices[2].us_only: '11' is not a multiple over 0 and at most 10, e.g. \"1.1\"",
            "prices.yaml:4: prices[3].us_only: '1.1x' is not a decimal number of times every token price, e.g. \"1.1\"",
        ])
    }

    @Test("file_search is a fee in dollars per 1,000 calls, $2.50 when absent")
    func fileSearchFee() throws {
        let book = try PolicyFixture.with(prices: """
            - { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", output: "0.6", file_search: "3.00" }
            - { model: "gpt-4.1", effective_from: "2025-04-14", input: "2", output: "8" }
            """).load().prices
        let day = Day("2026-01-01")!
        #expect(book.price(for: "gpt-4o-mini", on: day)?.fileSearch == Money(picodollars: 3_000_000_000))
        #expect(book.price(for: "gpt-4.1", on: day)?.fileSearch == ModelPrice.defaultFileSearch)
        #expect(try PolicyFixture.with(prices: """
            - { model: "m", effective_from: "2024-07-18", input: "1", output: "1", file_search: "2.5 per call" }
            """).problems() == ["prices.yaml:1: prices[0].file_search: '2.5 per call' is not a decimal number of dollars per 1,000 calls, e.g. \"2.50\""])
    }

    @Test("a tier's or a long prompt's entry without a search fee of its own takes its standard entry's")
    func variantsTakeTheStandardFees() throws {
        let book = try PolicyFixture.with(prices: """
            - { model: "gpt-4o", effective_from: "2024-08-06", input: "2.5", output: "10", web_search: "25", file_search: "3", web_search_preview: "30" }
            - { model: "gpt-4o", tier: priority, effective_from: "2024-08-06", input: "4.25", output: "17" }
            - { model: "gpt-4o", tier: flex, effective_from: "2024-08-06", input: "1.25", output: "5", web_search: "10" }
            """).load().prices
        let pricing = book.pricing(for: "gpt-4o", on: Day("2026-01-01")!)
        let priority = try #require(pricing.price(tier: "priority", promptTokens: 1).price)
        #expect(priority.webSearch == Money(picodollars: 25_000_000_000) && priority.fileSearch == Money(picodollars: 3_000_000_000))
        #expect(priority.webSearchPreview == Money(picodollars: 30_000_000_000))
        #expect(pricing.standard?.webSearchPreview == Money(picodollars: 30_000_000_000))
        let flex = try #require(pricing.price(tier: "flex", promptTokens: 1).price)
        #expect(flex.webSearch == ModelPrice.defaultWebSearch && flex.fileSearch == Money(picodollars: 3_000_000_000))
        #expect(flex.webSearchPreview == Money(picodollars: 30_000_000_000))
        // The standard entry in force on the call's day decides, whatever the tier entry's date.
        let dated = try PolicyFixture.with(prices: """
            - { model: "gpt-4.1", effective_from: "2025-04-14", input: "2", output: "8" }
            - { model: "gpt-4.1", effective_from: "2025-06-01", input: "2", output: "8", web_search_preview: "25" }
            - { model: "gpt-4.1", tier: priority, effective_from: "2025-01-01", input: "3.5", output: "14" }
            """).load().prices
        #expect(dated.pricing(for: "gpt-4.1", on: Day("2025-05-01")!).price(tier: "priority", promptTokens: 1).price?.webSearchPreview == nil)
        #expect(dated.pricing(for: "gpt-4.1", on: Day("2026-01-01")!).price(tier: "priority", promptTokens: 1).price?.webSearchPreview
                == Money(picodollars: 25_000_000_000))
    }

    @Test("web_search is a fee in dollars per 1,000 searches, $10 when absent")
    func webSearchFee() throws {
        let book = try PolicyFixture.with(prices: """
            - { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", output: "0.6", web_search: "25.00" }
            - { model: "claude-haiku-4-5", effective_from: "2025-10-01", input: "1", output: "5" }
            """).load().prices
        let day = Day("2026-01-01")!
        #expect(book.price(for: "gpt-4o-mini", on: day)?.webSearch == Money(picodollars: 25_000_000_000))
        #expect(book.price(for: "claude-haiku-4-5", on: day)?.webSearch == ModelPrice.defaultWebSearch)
        #expect(try PolicyFixture.with(prices: """
            - { model: "m", effective_from: "2024-07-18", input: "1", output: "1", web_search: 10 }
            """).problems() == [
            "prices.yaml:1: prices[0].web_search: write the fee as a quoted string, \"10\": bare YAML numbers are floats and may not be exact",
        ])
    }

    @Test("audio_input and audio_output price audio tokens; absent, audio pays the text price")
    func audioPrices() throws {
        let book = try PolicyFixture.with(prices: """
            - { model: "gpt-audio", effective_from: "2025-08-28", input: "2.5", output: "10", audio_input: "32", audio_output: "64.000001" }
            - { model: "gpt-4o", effective_from: "2024-08-06", input: "2.5", output: "10" }
            """).load().prices
        let day = Day("2026-01-01")!
        let audio = try #require(book.price(for: "gpt-audio", on: day))
        #expect(audio.audioInput == Money(picodollars: 32_000_000) && audio.audioOutput == Money(picodollars: 64_000_001))
        let text = try #require(book.price(for: "gpt-4o", on: day))
        #expect(text.audioInput == nil && text.audioOutput == nil)
        let problems = try PolicyFixture.with(prices: """
            - { model: "m", effective_from: "2024-07-18", input: "1", output: "1", audio_input: 32, audio_output: "-1" }
            """).problems()
        #expect(problems == [
            "prices.yaml:1: prices[0].audio_input: write the price as a quoted string, \"32\": bare YAML numbers are floats and may not be exact",
            "prices.yaml:1: prices[0].audio_output: negative price '-1'",
        ])
    }

    @Test func rootMustBeAList() throws {
        #expect(try PolicyFixture.with(prices: "gpt-4o: \"2.5\"\n").problems() == [
            "prices.yaml:1: prices: expected a list, found a mapping",
        ])
    }

    @Test func priceBookHasExactPerTokenAmounts() throws {
        let set = try PolicyFixture.with(prices: """
            - model: gpt-4o-mini
              effective_from: "2024-07-18"
              input: "0.15"
              cached_input: "0.075"
              output: "0.60"
              source: https://openai.com/api/pricing/
            - { model: "gpt-4o-mini", effective_from: "2026-01-01", input: "0.000001", cache_write: "0", cache_write_1h: "7", output: "1" }
            """).load()
        let book = set.prices
        let old = try #require(book.price(for: "gpt-4o-mini", on: Day("2025-06-30")!))
        #expect(old.input == Money(picodollars: 150_000))          // $0.15 / 1M = 150,000 pd a token
        #expect(old.cachedInput == Money(picodollars: 75_000))
        #expect(old.cacheWrite == old.input)                        // absent: defaults to input
        #expect(old.cacheWrite1h == Money(picodollars: 300_000))    // absent: twice the input
        #expect(old.output == Money(picodollars: 600_000))
        #expect(old.source == "https://openai.com/api/pricing/")
        #expect(old.id == "gpt-4o-mini@2024-07-18")
        let usage = Usage(inputTokens: 1_000_000, cachedInputTokens: 1_000_000, outputTokens: 1_000_000)
        #expect(old.cost(of: usage) == Money(dollars: "0.825"))

        let new = try #require(book.price(for: "gpt-4o-mini", on: Day("2026-01-01")!))
        #expect(new.input == Money(picodollars: 1))
        #expect(new.cachedInput == new.input)                       // absent: defaults to input
        #expect(new.cacheWrite == .zero)
        #expect(new.cacheWrite1h == Money(picodollars: 7_000_000))
        #expect(new.output == Money(picodollars: 1_000_000))
        #expect(book.price(for: "gpt-4o-mini", on: Day("2024-07-17")!) == nil)
    }
}

import Testing
@testable import Metering

@Suite struct PromptEstimateTests {
    @Test func bytesOverThreeRoundedUpAtLeastOne() throws {
        #expect(PromptEstimate.bytesPerToken == 3)
        #expect(PromptEstimate.tokens(bodyBytes: 0) == 1)
        #expect(PromptEstimate.tokens(bodyBytes: 1) == 1)
        #expect(PromptEstimate.tokens(bodyBytes: 3) == 1)
        #expect(PromptEstimate.tokens(bodyBytes: 4) == 2)
        #expect(PromptEstimate.tokens(bodyBytes: 6) == 2)
        #expect(PromptEstimate.tokens(bodyBytes: 7) == 3)
        #expect(PromptEstimate.tokens(bodyBytes: 3_000_000) == 1_000_000)
        #expect(PromptEstimate.tokens(bodyBytes: Int.max) == Int.max / 3 + 1)
        #expect(PromptEstimate.tokens(bodyBytes: -5) == 1)
        let text = #"{"model":"gpt-4o","messages":[{"role":"user","content":"héllo"}]}"#
        let peek = try RequestPeek(body: Array(text.utf8))
        #expect(PromptEstimate.tokens(peek) == (text.utf8.count + 2) / 3)
    }
}

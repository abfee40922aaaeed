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

    @Test("inline base64 images count per image, not per byte: OpenAI data URLs and Anthropic sources")
    func inlineImagesCountPerImage() throws {
        let jpeg = "/9j/" + String(repeating: "QUJD", count: 100_000)  // 400 KB of base64
        let png = "iVBORw0KGgo" + String(repeating: "QUJD", count: 50_000)
        let openai = #"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,\#(jpeg)"}}]}]}"#
        let o = try RequestPeek(body: Array(openai.utf8))
        #expect(o.inlineImages == 1)
        let rest = openai.utf8.count - ("data:image/jpeg;base64," + jpeg).utf8.count
        #expect(PromptEstimate.tokens(o) == PromptEstimate.tokens(bodyBytes: rest) + PromptEstimate.tokensPerInlineImage)
        let anthropic = #"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"\#(jpeg)"}},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"\#(png)"}}]}]}"#
        let a = try RequestPeek(body: Array(anthropic.utf8))
        #expect(a.inlineImages == 2)
        #expect(PromptEstimate.tokens(a) < 4_000)
        // Long text, a PDF, or a base64 string written with escaped slashes count by their bytes.
        let text = String(repeating: "words and more words ", count: 200)
        let pdf = "JVBERi0" + String(repeating: "QUJD", count: 1_000)
        let escaped = #"\/9j\/"# + String(repeating: "QUJD", count: 1_000)
        for value in [text, pdf, escaped] {
            let body = #"{"model":"m","messages":[{"role":"user","content":"\#(value)"}]}"#
            let p = try RequestPeek(body: Array(body.utf8))
            #expect(p.inlineImages == 0 && PromptEstimate.tokens(p) == PromptEstimate.tokens(bodyBytes: body.utf8.count))
        }
    }
}

import FakeLLM
import Foundation
import Ledger
import Metering
import Testing
@testable import Gateway

/// OpenAI's audio tokens (prices.yaml `audio_input`, `audio_output`): parts of the prompt and
/// completion tokens, charged at their own prices; reserved at them when the request sends audio
/// or asks for an audio answer.
@Suite("Audio tokens")
struct AudioPricingTests {
    static func chat(_ model: String, stream: Bool = false, audioAnswer: Bool = false) -> String {
        #"{"model":"\#(model)","messages":[{"role":"user","content":"say hi"}]"#
            + (stream ? #","stream":true"# : "")
            + (audioAnswer ? #","modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"}"# : "") + "}"
    }

    @Test("audio tokens FakeLLM reports are charged at the audio prices, streamed or not; a model without them pays the text price and its row says so")
    func chargedAtAudioPrices() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-audio-input-tokens": "40", "x-fake-audio-output-tokens": "30"])
        defer { h.shutdown() }
        for (id, body) in [("au", Self.chat("gpt-audio")), ("au-stream", Self.chat("gpt-audio", stream: true)),
                           ("au-text", Self.chat("gpt-quota"))] {
            let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: body, requestID: id)
            #expect(r.status == 200, "\(id)")
        }
        for id in ["au", "au-stream"] {
            let exchange = try #require(h.fake.exchange(requestID: id))
            let fake = try #require(FakeUsage.expected(for: exchange))
            let row = try #require(try h.row(id))
            #expect(row.usage.audioInputTokens == 40 && row.usage.audioOutputTokens == 30, "\(id)")
            #expect(row.usage.inputTokens == fake.promptTokens && row.usage.outputTokens == fake.outputTokens)
            let text = Int64(fake.promptTokens - 40) * 2_500_000 + Int64(fake.outputTokens - 30) * 10_000_000
            #expect(row.cost.picodollars == text + 40 * 32_000_000 + 30 * 64_500_000, "\(id)")
            #expect(row.price?.audioInput == Money(picodollars: 32_000_000) && row.errorMessage == nil)
        }
        let exchange = try #require(h.fake.exchange(requestID: "au-text"))
        let fake = try #require(FakeUsage.expected(for: exchange))
        let row = try #require(try h.row("au-text"))
        #expect(row.usage.audioOutputTokens == 30)
        #expect(row.cost.picodollars == Int64(fake.promptTokens + fake.outputTokens) * 1_000_000)
        #expect(row.errorMessage == "audio tokens, which prices.yaml does not price for 'gpt-quota': charged at the text price")
    }

    @Test("a request asking for an audio answer reserves its output at the audio price")
    func reservationAtAudioPrice() async throws {
        // max_completion_tokens is injected at the cap (100): the text worst case is under the
        // budget, the audio one over it.
        let prompt = PromptEstimate.tokens(bodyBytes: Self.chat("gpt-audio", audioAnswer: true).utf8.count)
        let text = Int64(prompt) * 2_500_000 + 100 * 10_000_000
        let audio = Int64(prompt) * 2_500_000 + 100 * 64_500_000
        let budget = Money(picodollars: (text + audio) / 2).formatted(decimals: 6)
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: capped }
            plans: { capped: { max_output_tokens: 100, budget: { daily_usd: "\(budget)" } } }
            """)
        defer { h.shutdown() }
        let refused = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat("gpt-audio", audioAnswer: true),
                                       requestID: "audio-answer")
        #expect(refused.status == 429)
        let message = try #require(try errorObject(refused)["message"] as? String)
        #expect(message.hasSuffix("and up to 100 output tokens as audio at gpt-audio@2025-08-28's prices."), "\(message)")
        #expect(try h.row("audio-answer")?.outcome == .refusedQuota)
        #expect(h.fake.exchange(requestID: "audio-answer") == nil)
        let plain = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat("gpt-audio"), requestID: "text-answer")
        #expect(plain.status == 200)
    }

    @Test("inline audio counts by how long it plays, not by its bytes: minutes of WAV fit a 20,000 tokens-per-minute limit")
    func inlineAudioEstimate() async throws {
        // The provider counts what it heard: 600 audio tokens and the question's.
        let answer = UpstreamHostileTests.response(UpstreamHostileTests.body(usage: #"{"prompt_tokens":610,"completion_tokens":5,"prompt_tokens_details":{"audio_tokens":600}}"#))
        let canned = try CannedProvider(answers: Array(repeating: [answer], count: 3), readsBody: true)
        defer { canned.shutdown() }
        let h = try UpstreamHostileTests.harness(canned, plans: """
            defaults: { plan: metered }
            plans: { metered: { tokens_per_minute: 20000, max_output_tokens: 100 } }
            """)
        defer { h.shutdown() }
        // 30 s of WAV is 1.9 MB of base64: 640K tokens by its bytes, which would leave the key in
        // debt for half an hour after the first call; 600 by its length.
        let wav = RequestPeekAudio.wav(seconds: 30)
        let body = #"{"model":"gpt-audio","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"\#(wav)","format":"wav"}}]}]}"#
        for id in ["wav-1", "wav-2", "wav-3"] {
            let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: body, requestID: id)
            #expect(r.status == 200, "\(id)")
            let row = try #require(try h.row(id))
            #expect(row.outcome == .ok && row.usage.audioInputTokens == 600)
            #expect(row.cost.picodollars == 10 * 2_500_000 + 600 * 32_000_000 + 5 * 10_000_000)
        }
    }
}

/// Base64 audio for tests.
enum RequestPeekAudio {
    /// A 16-bit mono 24 kHz WAV of silence (48,000 bytes a second), base64.
    static func wav(seconds: Int, rate: UInt32 = 24_000) -> String {
        let data = seconds * Int(rate) * 2
        var bytes = Array("RIFF".utf8) + le(UInt32(36 + data)) + Array("WAVEfmt ".utf8)
        bytes += le(16) + [1, 0, 1, 0] + le(rate) + le(rate * 2) + [2, 0, 16, 0]
        bytes += Array("data".utf8) + le(UInt32(data)) + [UInt8](repeating: 0, count: data)
        return Data(bytes).base64EncodedString()
    }

    private static func le(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}

extension AudioPricingTests {
    @Test("a spoken answer's stream cut before its usage: its sound is estimated as audio output and its prompt's audio as audio input, at the audio prices")
    func cutSpokenStream() async throws {
        // Two chunks of sound (6,400 base64 characters each: 2 tokens at 20 a second of 24 kHz
        // PCM) with their transcript, then the connection ends without [DONE] or a usage.
        let sound = String(repeating: "AAAA", count: 1_600)
        let events = ["Hel", "lo"].map {
            #"data: {"choices":[{"index":0,"delta":{"audio":{"id":"audio_1","data":"\#(sound)","transcript":"\#($0)"}}}]}"# + "\n\n"
        }.joined()
        let canned = try CannedProvider([UpstreamHostileTests.streamHead(), Array(events.utf8)])
        defer { canned.shutdown() }
        let h = try UpstreamHostileTests.harness(canned)
        defer { h.shutdown() }
        let wav = RequestPeekAudio.wav(seconds: 2)
        let body = #"{"model":"gpt-audio","stream":true,"modalities":["text","audio"],"audio":{"voice":"alloy","format":"pcm16"},"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"\#(wav)","format":"wav"}}]}]}"#
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: body, requestID: "cut-sound")
        #expect(r.status == 200 && !r.complete)
        let row = try #require(try h.row("cut-sound"))
        #expect(row.outcome == .upstreamError && row.usageSource == .estimated)
        // Output: two transcript events (2 tokens) and 4 tokens of sound.
        #expect(row.usage.outputTokens == 6 && row.usage.audioOutputTokens == 4)
        // Input: the prompt estimate, 41 of it the WAV's two seconds (and its header).
        #expect(row.usage.audioInputTokens == 41)
        let input = Int64(row.usage.inputTokens)
        #expect(row.cost.picodollars == (input - 41) * 2_500_000 + 41 * 32_000_000 + 2 * 10_000_000 + 4 * 64_500_000)
    }
}

import Foundation
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

    @Test("inline audio counts by how long it may play: a WAV by its header (a forged rate capped), an MP3 at 8 kbit/s")
    func inlineAudioCountsBySeconds() throws {
        /// 16-bit mono: `byteRate` / 2 samples a second; `claimed` is the byte rate its header says.
        func wav(seconds: Int, byteRate: UInt32, claimed: UInt32? = nil, fill: UInt8 = 0) -> String {
            let data = seconds * Int(byteRate)
            func le(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
            var bytes = Array("RIFF".utf8) + le(UInt32(36 + data)) + Array("WAVEfmt ".utf8)
            bytes += le(16) + [1, 0, 1, 0] + le(byteRate / 2) + le(claimed ?? byteRate) + [2, 0, 16, 0]
            bytes += Array("data".utf8) + le(UInt32(data)) + [UInt8](repeating: fill, count: data)
            return Data(bytes).base64EncodedString()
        }
        func body(_ data: String, format: String = "wav") -> String {
            #"{"model":"gpt-audio","messages":[{"role":"user","content":[{"type":"text","text":"what is said?"},{"type":"input_audio","input_audio":{"data":"\#(data)","format":"\#(format)"}}]}]}"#
        }
        for (seconds, rate) in [(10, 48_000), (3, 16_000)] as [(Int, UInt32)] {
            let audio = wav(seconds: seconds, byteRate: rate)
            let text = body(audio)
            let p = try RequestPeek(body: Array(text.utf8))
            #expect(p.inlineAudioBytes == audio.utf8.count && p.inlineImages == 0)
            #expect(abs(p.inlineAudioSeconds - Double(seconds)) < 0.01)
            // The header's 44 bytes count as audio too: a twentieth of a token more, rounded up.
            #expect(PromptEstimate.audioTokens(p) == seconds * 20 + 1)
            #expect(PromptEstimate.tokens(p) == PromptEstimate.tokens(bodyBytes: text.utf8.count - audio.utf8.count) + seconds * 20 + 1)
        }
        // A header claiming a byte rate above its samples' (a forged one): played at its samples'.
        let forged = wav(seconds: 10, byteRate: 48_000, claimed: 0xFFFF_FFFF)
        #expect(try RequestPeek(body: Array(body(forged).utf8)).inlineAudioSeconds > 9.99)
        // An MP3 (ID3 tag, or a bare frame), and a RIFF without a readable fmt chunk: 8 kbit/s.
        for audio in ["SUQzBAAAAAAA" + String(repeating: "QUJD", count: 3_000), "//uQxAAAAAAA" + String(repeating: "QUJD", count: 3_000),
                      "UklGRiQAAABXQVZF" + String(repeating: "QUJD", count: 3_000)] {
            let p = try RequestPeek(body: Array(body(audio, format: "mp3").utf8))
            #expect(p.inlineAudioBytes == audio.utf8.count)
            let seconds = Double(audio.utf8.count) * 3 / 4 / 1_000
            #expect(PromptEstimate.audioTokens(p) == Int((seconds * 20).rounded(.up)))
        }
        // `/` written `\/`: the same audio.
        let loud = wav(seconds: 2, byteRate: 48_000, fill: 0xFF)
        let escaped = loud.replacingOccurrences(of: "/", with: #"\/"#)
        #expect(escaped != loud)
        #expect(try RequestPeek(body: Array(body(escaped).utf8)).inlineAudioSeconds > 1.99)
        // Only in `input_audio`, and only base64 throughout: Anthropic's plain-text document
        // source (`data` too), and text behind an MP3 frame's or a WAV's opening, count by bytes.
        let banner = String(repeating: "/", count: 80) + " a source file, " + String(repeating: "then its code ", count: 200)
        let fakeWAV = String(forged.prefix(64)) + String(repeating: " and text", count: 300)
        let document = #"{"model":"claude","max_tokens":9,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"\#(forged)"}}]}]}"#
        for text in [body(banner, format: "mp3"), body(fakeWAV), document] {
            let p = try RequestPeek(body: Array(text.utf8))
            #expect(p.inlineAudioBytes == 0 && PromptEstimate.tokens(p) == PromptEstimate.tokens(bodyBytes: text.utf8.count))
        }
        // An audio answer asked for (OpenAI's `audio` parameter).
        let asks = #"{"model":"gpt-audio","modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"},"messages":[]}"#
        #expect(try RequestPeek(body: Array(asks.utf8)).asksAudioAnswer)
        #expect(try !RequestPeek(body: Array(#"{"model":"gpt-audio","audio":null,"messages":[]}"#.utf8)).asksAudioAnswer)
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
        // Long text, a PDF, a base64 image in a text field, text behind an image signature in a
        // text field, a data URL that is not base64, text starting like an MP3 frame: all count
        // by their bytes.
        let text = String(repeating: "words and more words ", count: 200)
        let pdf = "JVBERi0" + String(repeating: "QUJD", count: 1_000)
        let escaped = #"\/9j\/"# + String(repeating: "QUJD", count: 1_000)
        let comment = "// a comment, " + String(repeating: "then more of it ", count: 100)
        let notBase64 = "data:image/svg+xml," + String(repeating: "%3Csvg%3E", count: 200)
        let bodies = [text, pdf, escaped].map { #"{"model":"m","messages":[{"role":"user","content":"\#($0)"}]}"# } + [
            #"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"\#(jpeg)"}]}]}"#,
            #"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"\#(comment)","format":"mp3"}}]}]}"#,
            #"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"\#(notBase64)"}}]}]}"#,
            // Text behind a JPEG's signature (Anthropic's plain-text document source is `data` too).
            #"{"model":"m","messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"/9j/ \#(text)"}}]}]}"#,
        ]
        for body in bodies {
            let p = try RequestPeek(body: Array(body.utf8))
            #expect(p.inlineImages == 0 && PromptEstimate.tokens(p) == PromptEstimate.tokens(bodyBytes: body.utf8.count),
                    "\(body.prefix(80))")
        }
        // The Responses API's input_image (in a message, and in a tool's output), and a WebP (RIFF
        // with its WEBP tag) as Anthropic data, in a message and in a tool result.
        let webp = "UklGRiQAAABXRUJQ" + String(repeating: "QUJD", count: 1_000)
        let responses = #"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"data:image/png;base64,\#(png)"}]},{"type":"function_call_output","call_id":"c","output":[{"type":"input_image","image_url":"data:image/png;base64,\#(png)"}]}]}"#
        #expect(try RequestPeek(body: Array(responses.utf8)).inlineImages == 2)
        let webpSource = #"{"type":"image","source":{"type":"base64","media_type":"image/webp","data":"\#(webp)"}}"#
        let anthropicWebP = #"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":[\#(webpSource),{"type":"tool_result","tool_use_id":"t","content":[\#(webpSource)]}]}]}"#
        #expect(try RequestPeek(body: Array(anthropicWebP.utf8)).inlineImages == 2)
        // JSON may write `/` as `\/` (PHP's json_encode): the same images.
        let slashes = #"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image\/jpeg;base64,\/9j\/\#(jpeg.dropFirst(4))"}},{"type":"image","source":{"type":"base64","media_type":"image\/jpeg","data":"\/9j\/\#(jpeg.dropFirst(4))"}}]}]}"#
        let e = try RequestPeek(body: Array(slashes.utf8))
        #expect(e.inlineImages == 2 && PromptEstimate.tokens(e) < 4_000)
    }
}

extension PromptEstimateTests {
    @Test("Anthropic's bare base64 counts as an image only beside \"type\":\"base64\": a plain-text document source is text, even base64's characters behind a JPEG's signature")
    func bareImageNeedsItsBase64Source() throws {
        let jpeg = "/9j/" + String(repeating: "QUJD", count: 50_000)  // base64's characters throughout
        func body(_ source: String) -> String {
            #"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"document","source":\#(source)},{"type":"text","text":"decode it"}]}]}"#
        }
        let text = [
            #"{"type":"text","media_type":"text/plain","data":"\#(jpeg)"}"#,  // a trial's: billed 9× a day's budget
            #"{"data":"\#(jpeg)","media_type":"text/plain","type":"text"}"#,
            #"{"media_type":"image/jpeg","data":"\#(jpeg)"}"#,  // no type at all
            // A nested object's base64 type, or one in an array, is not this object's.
            #"{"type":"text","x":{"type":"base64"},"data":"\#(jpeg)"}"#,
            #"{"x":{"type":"base64"},"data":"\#(jpeg)","type":"text"}"#,
            #"{"type":["base64"],"data":"\#(jpeg)"}"#,
            #"{"x":[{"type":"base64"},"y"],"data":"\#(jpeg)"}"#,
            #"{"type":"base6\u0034","data":"\#(jpeg)"}"#,
            // A second type, which a parser may read last (a verification trial's), escaped or not.
            #"{"type":"base64","media_type":"text/plain","data":"\#(jpeg)","type":"text"}"#,
            #"{"type":"text","data":"\#(jpeg)","type":"base64"}"#,
            #"{"type":"base64","data":"\#(jpeg)","t\u0079pe":"text"}"#,
            #"{"type":"text","x":{"type":"text"},"type":"base64","data":"\#(jpeg)"}"#,
            #"{"type":"base64","type":"base64","data":"\#(jpeg)"}"#,
        ].map(body)
        for b in text {
            let p = try RequestPeek(body: Array(b.utf8))
            #expect(p.inlineImages == 0 && PromptEstimate.tokens(p) == PromptEstimate.tokens(bodyBytes: b.utf8.count),
                    "\(b.dropFirst(100).prefix(70))")
        }
        let images = [
            #"{"type":"base64","media_type":"image/jpeg","data":"\#(jpeg)"}"#,
            #"{"media_type":"image/jpeg","data":"\#(jpeg)","type":"base64"}"#,  // the type after the data
            #"{"data":"\#(jpeg)","x":{"type":"text","y":[1]},"type":"base64"}"#,
            #"{"t\u0079pe":"base64","data":"\#(jpeg)"}"#,
        ].map(body)
        for b in images {
            let p = try RequestPeek(body: Array(b.utf8))
            #expect(p.inlineImages == 1 && PromptEstimate.tokens(p) < 2_000, "\(b.dropFirst(100).prefix(70))")
        }
    }
}

extension PromptEstimateTests {
    @Test("media counts only where the APIs read it: the same shapes in a tool's schema, a tool call's input or another member are text")
    func mediaOnlyWhereTheAPIsReadIt() throws {
        let jpeg = "/9j/" + String(repeating: "QUJD", count: 50_000)
        let source = #"{"type":"base64","media_type":"image/jpeg","data":"\#(jpeg)"}"#
        let image = #"{"type":"image","source":\#(source)}"#
        let dataURL = #"{"type":"image_url","image_url":{"url":"data:image/png;base64,\#(jpeg)"}}"#
        let audio = #"{"type":"input_audio","input_audio":{"data":"SUQz\#(jpeg.dropFirst(4))","format":"mp3"}}"#
        let text = [
            // A reviewer's: an Anthropic tool call's input, which the provider bills as text.
            #"{"model":"c","max_tokens":9,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":\#(source)}]}]}"#,
            #"{"model":"c","max_tokens":9,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"x":\#(image)}}]}]}"#,
            #"{"model":"c","max_tokens":9,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"url":"data:image/png;base64,\#(jpeg)"}}]}]}"#,
            // A tool's schema, on either API, and tools read by the peek itself.
            #"{"model":"c","max_tokens":9,"tools":[{"name":"f","input_schema":{"default":\#(image)}}],"messages":[]}"#,
            #"{"model":"g","tools":[{"type":"function","function":{"name":"f","parameters":{"examples":[\#(dataURL),\#(audio)]}}}],"messages":[]}"#,
            #"{"model":"g","tools":[{"type":"custom","messages":[{"content":[\#(image),\#(dataURL)]}]}],"messages":[]}"#,
            // Other members, and media one level off its place.
            #"{"model":"g","response_format":{"type":"json_schema","json_schema":{"schema":{"messages":[{"content":[\#(dataURL)]}]}}},"messages":[]}"#,
            #"{"model":"g","messages":[{"role":"user","content":[{"x":\#(dataURL)},{"x":\#(audio)}]}]}"#,
            #"{"model":"c","max_tokens":9,"system":[\#(image)],"messages":[{"role":"user","content":[{"x":\#(image)}]}]}"#,
        ]
        for body in text {
            let p = try RequestPeek(body: Array(body.utf8))
            #expect(p.inlineImages == 0 && p.inlineAudioBytes == 0
                    && PromptEstimate.tokens(p) == PromptEstimate.tokens(bodyBytes: body.utf8.count), "\(body.prefix(150))")
        }
        // In their places they count.
        let counted = #"{"model":"g","messages":[{"role":"user","content":[\#(dataURL),\#(audio),{"type":"text","text":"hi"}]}]}"#
        let p = try RequestPeek(body: Array(counted.utf8))
        #expect(p.inlineImages == 1 && p.inlineAudioBytes > 0)
    }
}

@Suite struct StreamedSoundTests {
    @Test("a spoken answer's events: the transcript is text, the sound its own tokens (20 a second of 24 kHz PCM)")
    func soundAndTranscript() {
        var text = StreamedText()
        let sound = String(repeating: "AAAA", count: 1_600)  // 6,400 characters: 0.1 s
        for event in [#"{"choices":[{"delta":{"audio":{"id":"a1","data":"\#(sound)","expires_at":1,"transcript":"Hello"}}}]}"#,
                      #"{"choices":[{"delta":{"audio" : { "data" : "\#(sound)" }}}]}"#,
                      #"{"choices":[{"delta":{"content":"the \"audio\": {} word"}}]}"#] {
            Array(event.utf8).withUnsafeBytes { text.count($0) }
        }
        #expect(abs(text.audioSeconds - 0.2) < 1e-9)  // 12,800 characters: 9,600 bytes of 16-bit 24 kHz PCM
        #expect(text.events == 2 && text.bytes == 5 + 22)
        #expect(OutputEstimate.tokens(text) == (all: 7 + 4, audio: 4))
    }
    @Test("a whole answer's sound is a file: a WAV timed by its header, any other format as if at 8 kbit/s")
    func wholeAnswerSound() {
        func wav(seconds: Int, byteRate: UInt32) -> String {
            let data = seconds * Int(byteRate)
            func le(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
            var bytes = Array("RIFF".utf8) + le(UInt32(36 + data)) + Array("WAVEfmt ".utf8)
            bytes += le(16) + [1, 0, 1, 0] + le(byteRate / 2) + le(byteRate) + [2, 0, 16, 0]
            bytes += Array("data".utf8) + le(UInt32(data)) + [UInt8](repeating: 0, count: data)
            return Data(bytes).base64EncodedString()
        }
        func estimate(_ sound: String) -> (all: Int, audio: Int) {
            var text = StreamedText()
            let body = #"{"choices":[{"message":{"role":"assistant","content":null,"audio":{"id":"a","data":"\#(sound)","transcript":"Hi"}}}]}"#
            Array(body.utf8).withUnsafeBytes { text.countAll($0) }
            return OutputEstimate.tokens(text)
        }
        // Three seconds of WAV: 60 tokens (and the header's twentieth), and the transcript's one.
        #expect(estimate(wav(seconds: 3, byteRate: 48_000)) == (all: 62, audio: 61))
        // 4,000 characters of Opus or MP3: 3,000 bytes, 3 s at 8 kbit/s.
        #expect(estimate("T2dnUw" + String(repeating: "AAAA", count: 998) + "AA") == (all: 61, audio: 60))
        // A header claiming more than 384,000 bytes a second (its samples agreeing) is held there.
        let fast = wav(seconds: 1, byteRate: 1_536_000)
        let seconds = Double(fast.utf8.count) * 3 / 4 / 384_000
        #expect(estimate(fast).audio == Int((seconds * 20).rounded(.up)))
    }
}

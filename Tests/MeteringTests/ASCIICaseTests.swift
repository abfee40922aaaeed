import Testing
import Metering

/// Header names and values compared without case, ASCII letters only.
@Suite struct ASCIICaseTests {
    @Test func lettersMatchInEitherCase() {
        #expect("Text/Event-STREAM".utf8.equals(ignoringASCIICase: "text/event-stream".utf8))
        #expect("BEARER sk-1".utf8.starts(withIgnoringASCIICase: "bearer ".utf8))
        #expect("x-fake-chunks".utf8.starts(withIgnoringASCIICase: "x-fake-".utf8))
    }

    /// Only letters are lowered: the bytes that differ from a letter by the 0x20 bit alone
    /// ('@' and '`', '[' and '{', and non-ASCII ones) stay different.
    @Test func otherBytesMustBeEqual() {
        #expect(!"@".utf8.equals(ignoringASCIICase: "`".utf8))
        #expect(!"[".utf8.equals(ignoringASCIICase: "{".utf8))
        #expect(!"\u{C0}".utf8.equals(ignoringASCIICase: "\u{E0}".utf8))
        #expect(!"x_fake-".utf8.starts(withIgnoringASCIICase: "x-fake-".utf8))
    }

    @Test func lengthsCount() {
        #expect(!"text/event-streams".utf8.equals(ignoringASCIICase: "text/event-stream".utf8))
        #expect(!"text/event".utf8.equals(ignoringASCIICase: "text/event-stream".utf8))
        #expect(!"Bear".utf8.starts(withIgnoringASCIICase: "bearer ".utf8))
        #expect("anything".utf8.starts(withIgnoringASCIICase: "".utf8))
        // Substrings' views (a trimmed header value) compare the same way.
        #expect(" Text/Event-Stream ".utf8.dropFirst().dropLast().equals(ignoringASCIICase: "text/event-stream".utf8))
    }

    @Test func headerNameSetsMatchWholeNamesInEitherCase() {
        let names = HeaderNameSet(["set-cookie", "te", "openai-organization"])
        #expect(names.contains("Set-Cookie") && names.contains("TE") && names.contains("OpenAI-Organization"))
        #expect(!names.contains("set-cookies") && !names.contains("t") && !names.contains("") && !names.contains("x-te"))
        #expect(!HeaderNameSet([]).contains("te"))
    }
}

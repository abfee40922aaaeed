import Metering

/// The SSE scanner on arbitrary bytes: it never traps, and the events it finds do not depend on
/// how the stream is cut into reads (upstream chunks arrive at any byte boundary).
public enum SSEScannerCheck {
    public static func run(_ data: UnsafeRawBufferPointer) throws {
        var input = FuzzInput(data)
        let bytes = input.bytes

        var whole = SSEParser()
        let expected = whole.feed(bytes) + whole.finishEvents()

        var split = SSEParser()
        var events: [SSEEvent] = []
        for piece in input.pieces() {
            events += split.feed(UnsafeRawBufferPointer(rebasing: bytes[piece]))
        }
        events += split.finishEvents()

        guard events == expected else {
            throw FuzzFailure("split feed found \(events.count) events, whole feed \(expected.count): \(events) vs \(expected)")
        }
        var previousEnd = 0
        for event in events {
            guard event.range.lowerBound >= previousEnd, event.range.upperBound <= bytes.count else {
                throw FuzzFailure("event range \(event.range) out of order or past the \(bytes.count) bytes")
            }
            previousEnd = event.range.upperBound
        }
    }
}

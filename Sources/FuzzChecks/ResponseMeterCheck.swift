import Metering
import NIOCore

/// Every dialect's usage readers on arbitrary provider answers, both as a whole body and as a
/// stream relayed through `ResponseMeter` in arbitrary chunks: no trap, never a negative token
/// count, and the relay is byte-identical (what the provider sent is what the client gets);
/// with a provider key, the relayed stream holds no copy of it.
public enum ResponseMeterCheck {
    public static func run(_ data: UnsafeRawBufferPointer) throws {
        var input = FuzzInput(data, seedBytes: 3)
        let bytes = input.bytes
        let endpoint = Endpoint.allCases[input.next(below: Endpoint.allCases.count)]
        let status = [200, 200, 200, 400, 429, 500, 529][input.next(below: 7)]

        let reading = ResponseUsage.read(endpoint: endpoint, status: status, body: bytes)
        try checkUsage(reading.usage, "\(endpoint.rawValue) body")
        if let message = reading.providerErrorMessage, message.utf8.count > 4 * ResponseUsage.errorMessageLimit + 16 {
            throw FuzzFailure("error message of \(message.utf8.count) bytes exceeds the limit")
        }

        for contentType in ["text/event-stream", "application/json"] {
            var meter = ResponseMeter(endpoint: endpoint, stripInjectedUsage: false)
            meter.head(status: status, contentType: contentType)
            var relayed: [UInt8] = []
            for piece in input.pieces() {
                for out in meter.consume(ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: bytes[piece]))) {
                    relayed += out.readableBytesView
                }
            }
            let (held, result) = meter.finish()
            for out in held { relayed += out.readableBytesView }
            guard relayed.elementsEqual(bytes) else {
                throw FuzzFailure("\(contentType) relay of \(endpoint.rawValue) changed the bytes: \(relayed.count) out for \(bytes.count) in")
            }
            try checkUsage(result.usage, "\(endpoint.rawValue) \(contentType) relay")
        }

        // A short key, so that inputs hold it; scrubbed wherever the pieces split it.
        let key = Array("sk-fz".utf8)
        var meter = ResponseMeter(endpoint: endpoint, stripInjectedUsage: false, providerKey: String(decoding: key, as: UTF8.self))
        meter.head(status: 200, contentType: "text/event-stream")
        var relayed: [UInt8] = []
        for piece in input.pieces() {
            for out in meter.consume(ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: bytes[piece]))) {
                relayed += out.readableBytesView
            }
        }
        for out in meter.finish().held { relayed += out.readableBytesView }
        if relayed.count >= key.count, (0...(relayed.count - key.count)).contains(where: { relayed[$0..<($0 + key.count)].elementsEqual(key) }) {
            throw FuzzFailure("the provider key went out in a \(endpoint.rawValue) stream")
        }
        guard meter.bytesForwarded == relayed.count else {
            throw FuzzFailure("bytesForwarded \(meter.bytesForwarded) for \(relayed.count) relayed")
        }
    }

    private static func checkUsage(_ usage: Usage?, _ context: String) throws {
        guard let usage else { return }
        let counts = [usage.inputTokens, usage.cachedInputTokens, usage.cacheWriteTokens,
                      usage.outputTokens, usage.reasoningTokens]
        guard counts.allSatisfy({ $0 >= 0 }) else {
            throw FuzzFailure("\(context): negative token count in \(usage)")
        }
    }
}

import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A provider that answers every request with the same raw bytes, written as given (head
/// included), then closes or resets the connection: for answers FakeLLM would never give.
final class CannedProvider: Sendable {
    enum Ending: Sendable { case close, reset }

    let channel: any Channel
    var port: Int { channel.localAddress!.port! }
    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Requests answered so far.
    var requests: Int { served.withLockedValue { $0 } }
    private let served = NIOLockedValueBox(0)
    /// The bytes of the requests received (each as its first read), in order.
    var received: [String] { log.withLockedValue { $0 } }
    private let log = NIOLockedValueBox<[String]>([])

    convenience init(_ writes: [[UInt8]], ending: Ending = .close) throws {
        try self.init(answers: [writes], ending: ending)
    }

    /// Answer n is `answers[n]`, the last one repeated for every later request. `readsBody`:
    /// answer once the request's whole body (by its `content-length`) came, not at its first
    /// bytes (closing with a large body unread resets the connection under the upload).
    init(answers: [[[UInt8]]], ending: Ending = .close, readsBody: Bool = false) throws {
        let served = self.served, log = self.log
        channel = try ServerBootstrap(group: TestHTTPClient.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let index = served.withLockedValue { count in
                    defer { count += 1 }
                    return count
                }
                let writes = answers[min(index, answers.count - 1)]
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Responder(writes: writes, ending: ending, readsBody: readsBody, log: log))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    func shutdown() { try? channel.close().wait() }

    /// Waits for the end of the request head (a blank line), then writes the canned answer.
    private final class Responder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let writes: [[UInt8]]
        let ending: Ending
        let readsBody: Bool
        let log: NIOLockedValueBox<[String]>
        private var answered = false
        private var request: [UInt8] = []

        init(writes: [[UInt8]], ending: Ending, readsBody: Bool, log: NIOLockedValueBox<[String]>) {
            self.writes = writes
            self.ending = ending
            self.readsBody = readsBody
            self.log = log
        }

        /// Whether `request` holds a whole request (head and `content-length` bytes of body);
        /// answers an `expect: 100-continue` on the way.
        private func whole(context: ChannelHandlerContext) -> Bool {
            let blank = Array("\r\n\r\n".utf8)
            guard let headEnd = request.indices.dropLast(3).first(where: { request[$0..<($0 + 4)].elementsEqual(blank) }) else {
                return false
            }
            let head = String(decoding: request[..<headEnd], as: UTF8.self).lowercased()
            let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
            if head.contains("expect: 100-continue"), request.count == headEnd + 4 {
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
            }
            return request.count >= headEnd + 4 + length
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            guard !answered, buffer.readableBytes > 0 else { return }
            if readsBody {
                request += buffer.readBytes(length: buffer.readableBytes) ?? []
                guard whole(context: context) else { return }
                buffer = ByteBuffer(bytes: request)
            }
            answered = true
            log.withLockedValue { $0.append(String(decoding: buffer.readableBytesView, as: UTF8.self)) }
            for bytes in writes { context.write(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: nil) }
            context.flush()
            // SO_LINGER 0 makes close send RST instead of FIN.
            if ending == .reset, let provider = context.channel as? SocketOptionProvider {
                provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            } else {
                context.close(promise: nil)
            }
        }

        typealias OutboundOut = ByteBuffer
    }
}

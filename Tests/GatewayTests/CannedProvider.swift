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

    /// Answer n is `answers[n]`, the last one repeated for every later request.
    init(answers: [[[UInt8]]], ending: Ending = .close) throws {
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
                    try channel.pipeline.syncOperations.addHandler(Responder(writes: writes, ending: ending, log: log))
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
        let log: NIOLockedValueBox<[String]>
        private var answered = false

        init(writes: [[UInt8]], ending: Ending, log: NIOLockedValueBox<[String]>) {
            self.writes = writes
            self.ending = ending
            self.log = log
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            guard !answered, buffer.readableBytes > 0 else { return }
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

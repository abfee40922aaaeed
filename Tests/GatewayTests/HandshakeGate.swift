import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP front for a provider: the connections it lets through are relayed to the provider,
/// the others are accepted and never answered (a provider that stops answering handshakes).
final class HandshakeGate: Sendable {
    let channel: any Channel
    var port: Int { channel.localAddress!.port! }
    /// Connections accepted so far.
    var accepted: Int { count.withLockedValue { $0 } }
    private let count = NIOLockedValueBox(0)
    private let open: NIOLockedValueBox<Bool>

    /// Relays to 127.0.0.1:`targetPort` while `isOpen`.
    init(targetPort: Int) throws {
        let count = self.count, open = NIOLockedValueBox(true)
        self.open = open
        channel = try ServerBootstrap(group: TestHTTPClient.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                count.withLockedValue { $0 += 1 }
                guard open.withLockedValue({ $0 }) else { return inbound.eventLoop.makeSucceededVoidFuture() }
                return ClientBootstrap(group: inbound.eventLoop).connect(host: "127.0.0.1", port: targetPort)
                    .flatMapThrowing { outbound in
                        let (a, b) = Relay.pair()
                        try inbound.pipeline.syncOperations.addHandler(a)
                        try outbound.pipeline.syncOperations.addHandler(b)
                    }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    /// New connections are held unanswered from now on (those relayed stay relayed).
    func stopAnswering() { open.withLockedValue { $0 = false } }

    func shutdown() { try? channel.close().wait() }

    /// Copies what one side reads to the other; a close on either side closes both.
    private final class Relay: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var partner: Relay?
        private var context: ChannelHandlerContext?

        static func pair() -> (Relay, Relay) {
            let a = Relay(), b = Relay()
            a.partner = b
            b.partner = a
            return (a, b)
        }

        func handlerAdded(context: ChannelHandlerContext) { self.context = context }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard let other = partner?.context else { return }
            other.writeAndFlush(NIOAny(unwrapInboundIn(data)), promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            partner?.context?.close(promise: nil)
            partner?.partner = nil
            partner = nil
            self.context = nil
        }
    }
}

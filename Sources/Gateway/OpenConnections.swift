import NIOConcurrencyHelpers
import NIOCore

/// The client connections of a running gateway, so a graceful stop can reach the idle ones.
final class OpenConnections: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { [channels] _ in
            _ = channels.withLockedValue { $0.removeValue(forKey: id) }
        }
    }

    /// Tells every connection the gateway is draining: idle ones close now, busy ones after
    /// their current answer (`ProxyHandler` handles `Draining`).
    func drain() {
        for channel in channels.withLockedValue({ Array($0.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(Draining())
        }
    }

    /// The user event of `drain()`.
    struct Draining: Sendable {}
}

import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The client connections of a running gateway: held at most `max_connections` at once (so
/// idle or slow clients cannot take the descriptors that calls, the ledger and policy reloads
/// need), and reachable by a graceful stop.
final class OpenConnections: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        /// Connections closed at accept since start (the metric), and since the last one held.
        var refused = 0
        var refusedInTurn = 0
    }
    private let state = NIOLockedValueBox(State())
    /// The cap in force: `gateway.yaml`'s `max_connections`, read at each accept (it reloads).
    private let limit: @Sendable () -> Int
    private let logger: Logger

    init(limit: @escaping @Sendable () -> Int, logger: Logger) {
        self.limit = limit
        self.logger = logger
    }

    /// Holds `channel` until it closes; false (and the caller closes it) at the cap. The turns
    /// between refusing and holding are logged once each, not per connection.
    func admit(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let cap = limit()
        let (admitted, turn) = state.withLockedValue { state -> (Bool, Int?) in
            guard state.channels.count < cap else {
                state.refused += 1
                state.refusedInTurn += 1
                return (false, state.refusedInTurn == 1 ? 0 : nil)
            }
            state.channels[id] = channel
            defer { state.refusedInTurn = 0 }
            return (true, state.refusedInTurn > 0 ? state.refusedInTurn : nil)
        }
        switch (admitted, turn) {
        case (false, .some):
            logger.warning("client connections at max_connections: new connections are closed as they are accepted",
                           metadata: ["max_connections": "\(cap)"])
        case (true, .some(let refused)):
            logger.notice("client connections below max_connections again", metadata: ["refused": "\(refused)"])
        default:
            break
        }
        guard admitted else { return false }
        channel.closeFuture.whenComplete { [state] _ in
            _ = state.withLockedValue { $0.channels.removeValue(forKey: id) }
        }
        return true
    }

    /// Connections held now, and connections closed at the cap since start.
    var counts: (open: Int, refused: Int) { state.withLockedValue { ($0.channels.count, $0.refused) } }

    /// Tells every connection the gateway is draining: idle ones close now, busy ones after
    /// their current answer (`ProxyHandler` handles `Draining`).
    func drain() {
        for channel in state.withLockedValue({ Array($0.channels.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(Draining())
        }
    }

    /// The user event of `drain()`.
    struct Draining: Sendable {}

    /// The pipeline of a connection past the cap: closed once registered, before anything is read.
    final class Refused: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func channelActive(context: ChannelHandlerContext) { context.close(promise: nil) }
    }
}

/// The process's open-file limit, which bounds its connections (client and upstream sockets).
public enum DescriptorLimit {
    /// Raises the soft limit to the hard one (often 1,024 of 524,288 under systemd: the soft one
    /// exists for programs that use `select`, which this does not) and returns the limit in force.
    @discardableResult
    public static func raise() -> Int {
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return current
    }

    /// The soft limit in force.
    public static var current: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1_024 }
        return Int(clamping: limit.rlim_cur)
    }

    /// `max_connections` when `gateway.yaml` does not set it: half the limit less 64, so each
    /// client connection can have an HTTP/1.1 connection upstream and files keep descriptors.
    public static func automaticConnectionCap(descriptors: Int) -> Int { max(16, (descriptors - 64) / 2) }
}

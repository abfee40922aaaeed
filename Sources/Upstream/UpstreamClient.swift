import Logging
import NIOCore

/// Runs upstream HTTP calls on one curl driver thread and reports each
/// response to its owner's event loop.
///
/// `start` may be called from any thread (usually a channel handler on its
/// event loop); it costs one enqueue, and at most one wakeup of the curl
/// thread. No thread or task is created per call.
public final class UpstreamClient: Sendable {
    let driver: CurlDriver

    public init(configuration: UpstreamConfiguration = .init(), logger: Logger) {
        driver = CurlDriver(configuration: configuration, logger: logger)
    }

    deinit {
        driver.shutdown()
    }

    /// Starts a transfer. `handler` is called only on `eventLoop` (see
    /// `UpstreamResponseHandler` for the order) and is released after its
    /// `upstreamEnd`. After `shutdown`, the handler just gets `.cancelled`.
    public func start(
        _ request: UpstreamRequest, on eventLoop: any EventLoop, handler: any UpstreamResponseHandler
    ) -> UpstreamTransfer {
        let transfer = CurlTransfer(request: request, eventLoop: eventLoop, handler: handler, driver: driver)
        if !driver.submit(.start(transfer)) {
            eventLoop.execute { transfer.deliver(Delivery(end: .failure(.cancelled))) }
        }
        return UpstreamTransfer(transfer)
    }

    /// Whether this libcurl lets a streaming call's request go once its answer started (7.88.x only).
    public static var releasesSentBodies: Bool { CurlRuntime.releasesSentBodies }

    /// Request bodies let go while their answer still streamed (`CurlTransfer.releaseSentBody`).
    public var sentBodiesReleased: Int { driver.sentBodiesReleased.load(ordering: .relaxed) }

    /// Runs `work` on the curl thread, between two of its passes (for what only that thread can
    /// do, such as giving its allocator's free pages back). Dropped after `shutdown`.
    public func onCurlThread(_ work: @escaping @Sendable () -> Void) {
        _ = driver.submit(.perform(work))
    }

    /// Cancels every transfer (their handlers get `.cancelled`), waits for the
    /// curl thread to exit and releases curl. Blocks; do not call it from a
    /// handler callback.
    public func shutdown() {
        driver.shutdown()
    }
}

/// The owner's grip on a running transfer. Meant to be used on the transfer's
/// event loop (calls from elsewhere hop there first). Each call costs at most
/// one enqueue to the curl thread, and none when it changes nothing.
public struct UpstreamTransfer: Sendable {
    private let transfer: CurlTransfer

    init(_ transfer: CurlTransfer) {
        self.transfer = transfer
    }

    /// Aborts the transfer; the upstream connection is closed, not reused
    /// (on HTTP/2 only the stream is reset). Once this returns (on the event
    /// loop) the handler gets no further head or body, and exactly one
    /// `upstreamEnd(.failure(.cancelled))` later, never from inside `cancel`.
    /// No-op after the end was delivered.
    public func cancel() { transfer.cancel() }

    /// Stops receiving (backpressure). Data already read in the current curl
    /// pass is still delivered; after that nothing until `resume`. The total
    /// timeout keeps running while paused.
    public func pause() { transfer.pause() }

    /// Continues receiving after `pause`.
    public func resume() { transfer.resume() }

    /// Whether the request began to go out to the provider, which may then have it (and bill
    /// it): false for a transfer cancelled while it waited for a connection or was connecting.
    public var requestWentOut: Bool { transfer.requestWentOut.load(ordering: .relaxed) }
}

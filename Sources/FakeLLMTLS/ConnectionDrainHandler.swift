import FakeLLM
import NIOCore
import NIOHTTP2

/// In each HTTP/2 stream's pipeline: on `FakeConnectionDrain`, writes a GOAWAY on the connection
/// whose last stream id is below this stream's (so it was not processed), then closes it. Only
/// the stream's channel knows its id, hence an outbound event rather than a write in FakeLLM.
final class ConnectionDrainHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTP2Frame.FramePayload

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard event is FakeConnectionDrain else {
            return context.triggerUserOutboundEvent(event, promise: promise)
        }
        promise?.succeed()
        guard let connection = context.channel.parent else { return context.close(promise: nil) }
        guard let id = try? context.channel.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID) else {
            return connection.close(promise: nil)  // no id to refuse from: a plain close
        }
        let last = HTTP2StreamID(max(0, Int(Int32(id)) - 2))
        let goAway = HTTP2Frame(streamID: .rootStream,
                                payload: .goAway(lastStreamID: last, errorCode: .noError, opaqueData: nil))
        connection.writeAndFlush(goAway).whenComplete { _ in connection.close(promise: nil) }
    }
}

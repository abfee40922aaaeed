import FakeLLM
import NIOCore
import NIOHTTP2

/// In each HTTP/2 stream's pipeline, below the HTTP/1 codec, the failures FakeLLM's handler
/// cannot write in HTTP/1 terms, asked for as outbound events:
/// - `FakeConnectionDrain`: a GOAWAY on the connection whose last stream id is below this
///   stream's (so it was not processed), then the connection's close. Only the stream's channel
///   knows its id.
/// - `FakeStreamReset`: RST_STREAM on this stream with its error code.
final class StreamFailureHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if let reset = event as? FakeStreamReset {
            promise?.succeed()
            let code: HTTP2ErrorCode = switch reset { case .http11Required: .http11Required }
            return context.writeAndFlush(wrapOutboundOut(.rstStream(code)), promise: nil)
        }
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

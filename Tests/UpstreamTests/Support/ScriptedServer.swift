import NIOCore
import NIOPosix
@testable import Upstream

/// A raw TCP server speaking just enough HTTP/1.1 to answer with exact bytes
/// (interim responses, odd header spellings, pauses, closes) and to report
/// what it received and when connections close. Complements FakeLLM for
/// the cases a well-behaved server cannot produce.
final class ScriptedServer: Sendable {
    enum Step: Sendable {
        case write(String)
        case delay(TimeAmount)
        case close
    }

    struct Received: Sendable {
        var head: String
        var body: [UInt8]
    }

    private let channel: any Channel
    private let state = State()
    var port: Int { channel.localAddress!.port! }
    var baseURL: String { "http://127.0.0.1:\(port)" }

    private final class State: @unchecked Sendable {
        let lock = PThreadLock()
        var received: [Received] = []
        var opened = 0
        var closed = 0
    }

    /// `respond` picks the steps from the request head (request line + headers).
    init(group: any EventLoopGroup, respond: @escaping @Sendable (String) -> [Step]) async throws {
        let state = self.state
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(Connection(state: state, respond: respond))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var received: [Received] { state.lock.withLock { state.received } }
    var connectionsOpened: Int { state.lock.withLock { state.opened } }
    var connectionsClosed: Int { state.lock.withLock { state.closed } }

    func close() async throws {
        try await channel.close()
    }

    private final class Connection: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let state: State
        let respond: @Sendable (String) -> [Step]
        var buffer: [UInt8] = []
        var busy = false

        init(state: State, respond: @escaping @Sendable (String) -> [Step]) {
            self.state = state
            self.respond = respond
        }

        func channelActive(context: ChannelHandlerContext) {
            state.lock.withLock { state.opened += 1 }
        }

        func channelInactive(context: ChannelHandlerContext) {
            state.lock.withLock { state.closed += 1 }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            buffer += Array(unwrapInboundIn(data).readableBytesView)
            answerIfComplete(context: context)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        private func answerIfComplete(context: ChannelHandlerContext) {
            guard !busy, let end = headEnd() else { return }
            let head = String(decoding: buffer[..<end], as: UTF8.self)
            let length = head.split(separator: "\r\n").compactMap { line -> Int? in
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                return Int(parts[1].filter { $0 != " " && $0 != "\t" })
            }.first ?? 0
            guard buffer.count >= end + 4 + length else { return }
            let body = Array(buffer[(end + 4)..<(end + 4 + length)])
            buffer.removeFirst(end + 4 + length)
            state.lock.withLock { state.received.append(Received(head: head, body: body)) }
            busy = true
            play(respond(head)[...], context: context)
        }

        private func headEnd() -> Int? {
            guard buffer.count >= 4 else { return nil }
            for i in 0...(buffer.count - 4)
            where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
                return i
            }
            return nil
        }

        private func play(_ steps: ArraySlice<Step>, context: ChannelHandlerContext) {
            guard let step = steps.first else {
                busy = false
                answerIfComplete(context: context)
                return
            }
            let rest = steps.dropFirst()
            switch step {
            case .write(let text):
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
                play(rest, context: context)
            case .delay(let amount):
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: amount) {
                    let (me, context) = bound.value
                    guard context.channel.isActive else { return }
                    me.play(rest, context: context)
                }
            case .close:
                context.close(promise: nil)
            }
        }
    }
}


/// A canned HTTP/1.1 response with a Content-Length.
func httpResponse(status: String = "200 OK", headers: [(String, String)] = [], body: String) -> String {
    var text = "HTTP/1.1 \(status)\r\n"
    for (name, value) in headers { text += "\(name): \(value)\r\n" }
    text += "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    return text
}

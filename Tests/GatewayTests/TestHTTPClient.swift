import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// What a client received for one request: the head and every body chunk as it arrived.
struct ReceivedResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var chunks: [[UInt8]]
    /// False if the connection closed before the response's end.
    var complete: Bool
    /// Statuses of informational (1xx) responses that came first, e.g. 100 Continue.
    var interim: [Int] = []
    /// When the client hung up on purpose (`sendAndHangUp`), Unix seconds.
    var hungUpAt: Double?

    var body: [UInt8] { chunks.flatMap { $0 } }
    var text: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
}

/// The body as a JSON object; the test fails, showing the body, when it is not one.
func jsonObject(_ r: ReceivedResponse) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any], "\(r.text)")
}

/// The `error` object both dialects put in an error answer.
func errorObject(_ r: ReceivedResponse) throws -> [String: Any] {
    try #require(try jsonObject(r)["error"] as? [String: Any], "\(r.text)")
}

/// A minimal HTTP/1.1 client over a fresh connection per request, so tests see the raw bytes
/// and chunk boundaries the proxy wrote (no SDK in between).
enum TestHTTPClient {
    static let group = MultiThreadedEventLoopGroup.singleton

    static func send(port: Int, method: HTTPMethod = .POST, path: String, headers: [(String, String)] = [],
                     body: [UInt8]? = nil) async throws -> ReceivedResponse {
        let promise = group.next().makePromise(of: ReceivedResponse.self)
        return try await completing(promise) {
            let channel = try await connect(port: port, collector: Collector(promise: promise))
            try await write(channel, method: method, path: path, port: port, headers: headers, body: body)
            let response = try await promise.futureResult.get()
            try? await channel.close()
            return response
        }
    }

    /// Runs `body`, failing `promise` if it throws: a promise dropped unfulfilled is a fatal
    /// error in NIO, which would take the whole test process down with one failed request (a
    /// connection the server closed under load). Completing a completed promise does nothing.
    private static func completing<T>(_ promise: EventLoopPromise<ReceivedResponse>,
                                      _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            promise.fail(error)
            throw error
        }
    }

    static func postJSON(port: Int, path: String, key: String?, dialect: String = "openai",
                         json: String, headers: [(String, String)] = []) async throws -> ReceivedResponse {
        var all = [("content-type", "application/json")]
        if let key {
            all.append(dialect == "anthropic" ? ("x-api-key", key) : ("authorization", "Bearer \(key)"))
        }
        if dialect == "anthropic" { all.append(("anthropic-version", "2023-06-01")) }
        return try await send(port: port, path: path, headers: all + headers, body: Array(json.utf8))
    }

    /// Sends a request, reads `afterChunks` body chunks, then closes the connection.
    @discardableResult
    static func sendAndHangUp(port: Int, path: String, headers: [(String, String)], body: [UInt8],
                              afterChunks: Int) async throws -> ReceivedResponse {
        let promise = group.next().makePromise(of: ReceivedResponse.self)
        return try await completing(promise) {
            let channel = try await connect(port: port, collector: Collector(promise: promise, stopAfterChunks: afterChunks))
            try await write(channel, path: path, port: port, headers: headers, body: body)
            let response = try await promise.futureResult.get()
            try? await channel.close()
            return response
        }
    }

    /// Sends `count` identical requests one after the other on one keep-alive connection.
    static func sendSequentially(port: Int, count: Int, path: String, headers: [(String, String)],
                                 body: [UInt8]) async throws -> [ReceivedResponse] {
        var responses: [ReceivedResponse] = []
        let collector = Collector()
        let channel = try await connect(port: port, collector: collector)
        for _ in 0..<count {
            let promise = channel.eventLoop.makePromise(of: ReceivedResponse.self)
            responses.append(try await completing(promise) {
                try await channel.eventLoop.submit { collector.expect(promise) }.get()
                try await write(channel, path: path, port: port, headers: headers, body: body)
                return try await promise.futureResult.get()
            })
        }
        try? await channel.close()
        return responses
    }

    private static func connect(port: Int, collector: Collector) async throws -> any Channel {
        try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(HTTPRequestEncoder())
                    // Forward 1xx responses so tests can see 100 Continue.
                    try sync.addHandler(ByteToMessageHandler(HTTPResponseDecoder(
                        leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .forward)))
                    try sync.addHandler(collector)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    private static func write(_ channel: any Channel, method: HTTPMethod = .POST, path: String, port: Int,
                              headers: [(String, String)], body: [UInt8]?) async throws {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        if !headers.contains(where: { $0.0.lowercased() == "host" }) {
            head.headers.add(name: "host", value: "127.0.0.1:\(port)")
        }
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if let body { head.headers.add(name: "content-length", value: String(body.count)) }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil))
    }

    /// Collects the response to each request in turn (several on a keep-alive connection).
    /// Touched only on its channel's event loop.
    private final class Collector: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        private var promise: EventLoopPromise<ReceivedResponse>?
        private var response = ReceivedResponse(status: 0, headers: [], chunks: [], complete: false)
        private let stopAfterChunks: Int?

        init(promise: EventLoopPromise<ReceivedResponse>? = nil, stopAfterChunks: Int? = nil) {
            self.promise = promise
            self.stopAfterChunks = stopAfterChunks
        }

        /// Starts collecting the next response.
        func expect(_ promise: EventLoopPromise<ReceivedResponse>) {
            self.promise = promise
            response = ReceivedResponse(status: 0, headers: [], chunks: [], complete: false)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head) where head.status.code < 200:
                response.interim.append(Int(head.status.code))
            case .head(let head):
                response.status = Int(head.status.code)
                response.headers = head.headers.map { ($0.name, $0.value) }
            case .body(let buffer):
                response.chunks.append(Array(buffer.readableBytesView))
                if let stop = stopAfterChunks, response.chunks.count >= stop {
                    response.hungUpAt = Date().timeIntervalSince1970
                    context.close(promise: nil)
                    finish()
                }
            case .end where response.status == 0:
                break  // the end of an informational response
            case .end:
                response.complete = true
                finish()
            }
        }

        func channelInactive(context: ChannelHandlerContext) { finish() }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            finish()
            context.close(promise: nil)
        }

        private func finish() {
            promise?.succeed(response)
            promise = nil
        }
    }
}

import Foundation

/// A client on a plain socket, for what a well-behaved HTTP client never sends: pipelined
/// requests, HTTP/1.0, slow or endless headers, invalid bytes, a hang-up before the answer.
struct RawSocketClient {
    let fd: Int32

    /// `source`: the loopback address to connect from (any of 127.0.0.0/8), for tests of what a
    /// gateway keeps per client address.
    init(port: Int, from source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                Glibc.close(fd)
                throw POSIXError(.EADDRNOTAVAIL)
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            Glibc.close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends all of `bytes`; false if the server closed the connection meanwhile.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Reads until the server closes the connection (or `timeout` passes); returns what came.
    /// The blocking reads run on their own thread: a test must never block the few threads of
    /// Swift's concurrency pool (the other tests' tasks would starve meanwhile).
    func readUntilClosed(timeout: TimeInterval = 10) async -> (bytes: [UInt8], closed: Bool) {
        let (bytes, end) = await readUntilEnd(timeout: timeout)
        return (bytes, end != .timedOut)
    }

    /// How a read to the end ended: the server's FIN, a reset, or the timeout.
    enum End: Sendable { case closed, reset, timedOut }

    /// `readUntilClosed`, telling a clean close from a reset.
    func readUntilEnd(timeout: TimeInterval = 10) async -> (bytes: [UInt8], end: End) {
        let fd = self.fd
        return await withCheckedContinuation { done in
            Thread.detachNewThread {
                done.resume(returning: RawSocketClient(fd: fd).blockingRead(timeout: timeout))
            }
        }
    }

    private init(fd: Int32) { self.fd = fd }

    /// `readUntilEnd` on the calling thread: only for a test's own thread, never the pool's.
    func blockingRead(timeout: TimeInterval) -> (bytes: [UInt8], end: End) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (out, .closed) }
            if n < 0 { return (out, errno == ECONNRESET ? .reset : .timedOut) }
            out += buffer[..<n]
        }
        return (out, .timedOut)
    }

    func close() { Glibc.close(fd) }

    /// A request's bytes, as written by hand.
    static func request(_ method: String = "POST", _ path: String = "/v1/chat/completions", version: String = "HTTP/1.1",
                        key: String, body: String, requestID: String, extra: [String] = []) -> String {
        var lines = ["\(method) \(path) \(version)", "host: 127.0.0.1", "authorization: Bearer \(key)",
                     "content-type: application/json", "x-request-id: \(requestID)",
                     "content-length: \(body.utf8.count)"]
        lines += extra
        return lines.joined(separator: "\r\n") + "\r\n\r\n" + body
    }

    /// Statuses of the responses in `bytes`, in order.
    static func statuses(_ bytes: [UInt8]) -> [Int] {
        let text = String(decoding: bytes, as: UTF8.self)
        return text.components(separatedBy: "HTTP/1.").dropFirst().compactMap { Int($0.dropFirst(2).prefix(3)) }
    }

    /// Sends `request`, then hangs up once `ready()` holds (checked every 5 ms, for at most
    /// `timeout`), without reading an answer. On a thread of its own: a full test run can keep
    /// Swift's concurrency pool busy for seconds, and the hang-up must come when it is due.
    static func sendThenHangUp(port: Int, _ request: String, timeout: TimeInterval = 10,
                               when ready: @escaping @Sendable () -> Bool) async throws {
        let client = try RawSocketClient(port: port)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                client.send(request)
                let deadline = Date().addingTimeInterval(timeout)
                while !ready(), Date() < deadline { usleep(5_000) }
                client.close()
                done.resume()
            }
        }
    }

    /// Sends a request and hangs up `after` later without reading an answer.
    static func sendAndClose(port: Int, requestID: String, key: String, body: String, after: Duration) async throws {
        let client = try RawSocketClient(port: port)
        defer { client.close() }
        client.send(request(key: key, body: body, requestID: requestID))
        try await Task.sleep(for: after)
    }
}

import Metering
import NIOCore
import NIOHTTP1

/// The client side of a call as the call sees it: write the answer, or cut the connection.
/// Implemented by `ProxyHandler`; every method runs on `eventLoop`.
protocol ClientConnection: AnyObject {
    var eventLoop: any EventLoop { get }
    func writeHead(status: Int, headers: HTTPHeaders)
    func writeBody(_ chunk: ByteBuffer)
    func flush()
    /// Ends the response; the connection then serves the next request or closes.
    func writeEnd()
    /// Closes the connection at once (a truncated answer must not look complete).
    func abort()
    func writeRefusal(_ refusal: Refusal, dialect: Dialect, requestID: String)
}

extension ClientConnection {
    func writeRefusal(_ refusal: Refusal, dialect: Dialect, requestID: String) {
        writeJSON(status: refusal.status, body: refusal.body(in: dialect), requestID: requestID,
                  extraHeaders: refusal.headers)
    }

    func writeJSON(status: Int, body: String, requestID: String?, extraHeaders: [(String, String)] = []) {
        var headers = HTTPHeaders(extraHeaders)
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.utf8.count))
        if let requestID { headers.add(name: "x-request-id", value: requestID) }
        writeHead(status: status, headers: headers)
        writeBody(ByteBuffer(string: body))
        writeEnd()
    }
}

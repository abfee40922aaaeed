import Foundation
import Metering

/// One request FakeLLM received and exactly what it answered, byte for byte.
///
/// Recorded just before the final response bytes are written, so a client that has read the
/// whole answer always finds its exchange.
public struct FakeExchange: Sendable {
    /// The request's `x-request-id`, or `fake-<n>` when it had none.
    public var requestID: String
    /// Nil for a path FakeLLM does not serve (answered 404).
    public var route: FakeRoute?
    public var method: String
    /// As NIO names it: `HTTP/1.1`, or `HTTP/2.0` on an HTTP/2 connection.
    public var httpVersion: String
    /// The request target as received, query included.
    public var path: String
    public var requestHeaders: [(String, String)]
    public var requestBody: [UInt8]
    /// 0 when the connection was reset before any response byte.
    public var responseStatus: Int
    public var responseHeaders: [(String, String)]
    /// The body bytes written (HTTP chunked framing excluded), concatenated.
    public var responseBody: [UInt8]
    /// Each body write separately: one SSE event per element when streaming.
    public var responseChunks: [[UInt8]]
    /// False when the answer was cut, reset, or the client left before its end.
    public var completed: Bool
    /// When FakeLLM finished the answer or saw its client leave (Unix seconds): with the time a
    /// proxy's client hung up, the delay until the cancellation reached the provider.
    public var endedAt: Double = 0

    /// The first value of a request header, by case-insensitive name.
    public func requestHeader(_ name: String) -> String? {
        let lower = name.lowercased()
        return requestHeaders.first { $0.0.utf8.equals(ignoringASCIICase: lower.utf8) }?.1
    }

    public func responseHeader(_ name: String) -> String? {
        let lower = name.lowercased()
        return responseHeaders.first { $0.0.utf8.equals(ignoringASCIICase: lower.utf8) }?.1
    }

    public var responseText: String { String(decoding: responseBody, as: UTF8.self) }
}

/// The server's counters and its bounded store of recent exchanges, shared by all event loops.
final class ExchangeLog: @unchecked Sendable {
    // One lock guards everything below; each request takes it twice (count, record).
    private let lock = NSLock()
    private let capacity: Int
    private var requests = 0
    private var connections = 0
    private var sequence = 0
    private var byID: [String: (sequence: Int, exchange: FakeExchange)] = [:]
    /// Oldest first, as a ring: `order[(head + k) % capacity]`.
    private var order: [(id: String, sequence: Int)] = []
    private var head = 0
    private var droppedIDs: Set<String> = []

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Counts a request and returns its serial number (1-based).
    func nextRequest() -> Int {
        lock.lock()
        defer { lock.unlock() }
        requests += 1
        return requests
    }

    func countConnection() {
        lock.lock()
        defer { lock.unlock() }
        connections += 1
    }

    /// True the first time `requestID` asks for its connection to be dropped (kept for as many
    /// ids as exchanges are: past that, an id drops its connection again).
    func dropsConnection(requestID: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if droppedIDs.count >= capacity { droppedIDs.removeAll(keepingCapacity: true) }
        return droppedIDs.insert(requestID).inserted
    }

    var connectionCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return connections
    }

    var requestCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return requests
    }

    func record(_ exchange: FakeExchange) {
        lock.lock()
        defer { lock.unlock() }
        sequence += 1
        let entry = (id: exchange.requestID, sequence: sequence)
        if order.count < capacity {
            order.append(entry)
        } else {
            let evicted = order[head]
            // A newer exchange may reuse the id: only drop the entry this slot put there.
            if byID[evicted.id]?.sequence == evicted.sequence { byID[evicted.id] = nil }
            order[head] = entry
            head = (head + 1) % capacity
        }
        byID[exchange.requestID] = (sequence, exchange)
    }

    func exchange(requestID: String) -> FakeExchange? {
        lock.lock()
        defer { lock.unlock() }
        return byID[requestID]?.exchange
    }

    /// Recorded exchanges still kept, oldest first (a reused id shows its newest exchange once).
    func all() -> [FakeExchange] {
        lock.lock()
        defer { lock.unlock() }
        let ordered = order[head...] + order[..<head]
        return ordered.compactMap { entry in
            guard let kept = byID[entry.id], kept.sequence == entry.sequence else { return nil }
            return kept.exchange
        }
    }

    func removeAll() {
        lock.lock()
        defer { lock.unlock() }
        byID.removeAll()
        order.removeAll()
        head = 0
    }
}

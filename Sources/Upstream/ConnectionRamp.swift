import NIOCore

/// Holds HTTP/2 calls to an origin back while the connection they need is being opened, so they
/// join it instead of each opening one of their own.
///
/// Why: libcurl 7.88 waits for a connection still negotiating (`CURLOPT_PIPEWAIT`) only while it
/// does not yet know that the origin multiplexes. Once it knows, a call that finds every
/// connection full opens a new one, and so does every call after it until that connection is
/// ready: 150 held streams took 51 connections, 1,000 took 101, where 2 and 10 carry them (100
/// streams each). Each extra connection is a TLS handshake for the provider and about 60 KiB here.
///
/// The ramp counts, per origin, the free streams of its ready connections (learnt from curl's
/// socket callbacks and from where each call's request goes out) and lets a call go to curl
/// when a free stream is left for it, or when none is and no connection is being opened (the
/// call will open one). Other calls wait, first come first served, until a connection is ready
/// or a stream frees up. A call waits at most as long as the handshake of the connection it
/// will ride, which it would otherwise have waited for on a connection of its own.
///
/// Pure: the curl driver feeds it curl's events and adds the calls it lets go. What a call holds
/// (`Seat`) lives with the call.
struct ConnectionRamp<Call: AnyObject> {
    typealias ConnectionID = Int

    /// Where one call stands.
    enum Seat: Equatable {
        /// Not on the ramp (not HTTP/2, or ended).
        case none
        case waiting
        /// Handed to curl, not yet on a connection; `opens`: expected to open one.
        case admitted(opens: Bool)
        /// Its connection is being opened (curl made the socket for it).
        case opening(ConnectionID)
        /// Its request went out on this connection.
        case riding(ConnectionID)
    }

    private struct Origin {
        /// Its ready connections by local port (how a call's pre-request callback names its
        /// connection: libcurl 7.88 has no connection id for it, and `CURLINFO_ACTIVESOCKET`
        /// tells the previous transfer's).
        var connectionsByPort: [Int32: ConnectionID] = [:]
        /// Streams the ready connections have room for.
        var freeStreams = 0
        /// Calls admitted into free streams, not yet on one.
        var admitted = 0
        /// A call admitted to open a connection has not done so yet.
        var probing = false
        /// Connections being opened.
        var opening = 0
        var waiting = CircularBuffer<Call>()
    }

    private struct Connection {
        /// `draining`: a GOAWAY came (its calls are being sent again elsewhere): no room on it.
        enum State { case opening, ready, draining, abandoned }
        let origin: String
        var state = State.opening
        var localPort: Int32 = 0
        var streams = 0
        /// Sockets curl opened for it (two while happy eyeballs tries both address families).
        var sockets = 1
    }

    /// `CURLMOPT_MAX_CONCURRENT_STREAMS`: the streams libcurl puts on one connection. A provider
    /// allowing fewer makes the calls past its limit open connections of their own (counted as
    /// such: they are seen opening them).
    let streamsPerConnection: Int
    private var origins: [String: Origin] = [:]
    private var connections: [ConnectionID: Connection] = [:]
    private var socketConnections: [Int32: ConnectionID] = [:]
    private var nextConnection: ConnectionID = 0

    init(streamsPerConnection: Int) {
        self.streamsPerConnection = max(1, streamsPerConnection)
    }

    /// The origin (`https://host:port`) whose calls ride the ramp, or nil: only HTTPS URLs,
    /// where HTTP/2 is negotiated.
    static func origin(of url: String) -> String? {
        let utf8 = url.utf8
        guard utf8.count > 8, utf8.starts(with: "https://".utf8) else { return nil }
        let authority = utf8.index(utf8.startIndex, offsetBy: 8)
        let end = utf8[authority...].firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }) ?? utf8.endIndex
        return String(url[..<end])
    }

    /// A call to `origin` starts: whether it goes to curl now (else it waits for `release`).
    mutating func arrive(_ call: Call, origin: String, seat: inout Seat) -> Bool {
        var state = origins[origin] ?? Origin()
        defer { origins[origin] = state }
        if state.waiting.isEmpty, let admission = Self.admission(&state) {
            seat = admission
            return true
        }
        state.waiting.append(call)
        seat = .waiting
        return false
    }

    /// Waiting calls that may go to curl now, with their seats.
    mutating func release() -> [(Call, Seat)] {
        var released: [(Call, Seat)] = []
        for (origin, var state) in origins where !state.waiting.isEmpty {
            while !state.waiting.isEmpty, let admission = Self.admission(&state) {
                released.append((state.waiting.removeFirst(), admission))
            }
            origins[origin] = state
        }
        return released
    }

    /// Takes every waiting call off the ramp (shutdown).
    mutating func takeAllWaiting() -> [Call] {
        var calls: [Call] = []
        for origin in origins.keys {
            calls.append(contentsOf: origins[origin]!.waiting)
            origins[origin]!.waiting.removeAll()
        }
        return calls
    }

    /// Curl made socket `fd` for a connection the call needs. Returns false to refuse it: a call
    /// already sent (libcurl sending it again by itself, after a GOAWAY refused its stream) may
    /// open a connection only when none to its origin is being opened. When a busy provider
    /// drains, its refused calls would otherwise open one connection each, at once; refused
    /// here, they fail before reaching it and the gateway sends them again through the ramp.
    mutating func socketOpened(_ fd: Int32, origin: String, seat: inout Seat) -> Bool {
        switch seat {
        case .opening(let id):
            // The other address family of the same connection.
            connections[id]?.sockets += 1
            socketConnections[fd] = id
            return true
        case .admitted(let opens):
            resolveAdmission(opens: opens, origin: origin)
        case .riding(let id):
            drain(id)
            guard let state = origins[origin], state.opening == 0, !state.probing else { return false }
            leave(id)
        case .none, .waiting:
            return true
        }
        let id = nextConnection
        nextConnection += 1
        connections[id] = Connection(origin: origin)
        socketConnections[fd] = id
        origins[origin, default: Origin()].opening += 1
        seat = .opening(id)
        return true
    }

    /// The call's request goes out on the connection whose local port is `localPort` (curl's
    /// pre-request callback).
    mutating func requestGoingOut(localPort: Int32, origin: String, seat: inout Seat) {
        let on = origins[origin]?.connectionsByPort[localPort]
        switch seat {
        case .opening(let id) where on == nil && connections[id]?.state == .opening:
            // The connection it opened is ready, and carries it.
            connections[id]!.state = .ready
            connections[id]!.streams = 1
            connections[id]!.localPort = localPort
            origins[origin, default: Origin()].connectionsByPort[localPort] = id
            origins[origin, default: Origin()].opening -= 1
            origins[origin, default: Origin()].freeStreams += streamsPerConnection - 1
            seat = .riding(id)
            return
        case .opening(let id):
            abandon(id)
        case .admitted(let opens):
            resolveAdmission(opens: opens, origin: origin)
        case .riding(let id):
            if id == on { return }
            leave(id)
        case .none, .waiting:
            return
        }
        guard let on, connections[on]?.state == .ready else {
            seat = .none  // a connection the ramp did not see opened: not counted
            return
        }
        connections[on]!.streams += 1  // (never a draining one: see the guard)
        origins[origin, default: Origin()].freeStreams -= 1
        seat = .riding(on)
    }

    /// The call ended (done, failed or cancelled), wherever it stood.
    mutating func ended(_ call: Call, origin: String, seat: inout Seat) {
        switch seat {
        case .waiting:
            if let i = origins[origin]?.waiting.firstIndex(where: { $0 === call }) {
                origins[origin]!.waiting.remove(at: i)
            }
        case .admitted(let opens):
            resolveAdmission(opens: opens, origin: origin)
        case .opening(let id):
            abandon(id)
        case .riding(let id):
            leave(id)
        case .none:
            break
        }
        seat = .none
    }

    /// Curl closed socket `fd`. Calls still riding the connection leave it when they end.
    mutating func socketClosed(_ fd: Int32) {
        guard let id = socketConnections.removeValue(forKey: fd), var connection = connections[id] else { return }
        connection.sockets -= 1
        guard connection.sockets == 0 else {
            connections[id] = connection
            return
        }
        connections[id] = nil
        switch connection.state {
        case .opening: origins[connection.origin]?.opening -= 1
        case .ready:
            origins[connection.origin]?.freeStreams -= max(0, streamsPerConnection - connection.streams)
            origins[connection.origin]?.connectionsByPort[connection.localPort] = nil
        case .draining:
            origins[connection.origin]?.connectionsByPort[connection.localPort] = nil
        case .abandoned: break
        }
    }

    /// How `origin` stands, for tests.
    func counts(_ origin: String) -> (free: Int, opening: Int, waiting: Int, connections: Int) {
        let state = origins[origin] ?? Origin()
        return (state.freeStreams, state.opening, state.waiting.count,
                connections.values.filter { $0.origin == origin && $0.state != .abandoned }.count)
    }

    // MARK: -

    /// The seat a call gets now, if any: a free stream not promised to another admitted call,
    /// or, with none, leave to open a connection when none is being opened or about to be.
    private static func admission(_ state: inout Origin) -> Seat? {
        if state.freeStreams - state.admitted > 0 {
            state.admitted += 1
            return .admitted(opens: false)
        }
        guard state.opening == 0, !state.probing else { return nil }
        state.probing = true
        return .admitted(opens: true)
    }

    private mutating func resolveAdmission(opens: Bool, origin: String) {
        if opens { origins[origin]?.probing = false } else { origins[origin]?.admitted -= 1 }
    }

    private mutating func leave(_ id: ConnectionID) {
        guard var connection = connections[id], connection.state == .ready || connection.state == .draining else { return }
        connection.streams -= 1
        connections[id] = connection
        if connection.state == .ready { origins[connection.origin]?.freeStreams += 1 }
    }

    /// A call riding the connection is sent again elsewhere: a GOAWAY came, no call joins it now.
    private mutating func drain(_ id: ConnectionID) {
        guard var connection = connections[id], connection.state == .ready else { return }
        connection.state = .draining
        connections[id] = connection
        origins[connection.origin]?.freeStreams -= max(0, streamsPerConnection - connection.streams)
    }

    /// Its opener ended, or went elsewhere, before the connection was ready: libcurl closes it.
    private mutating func abandon(_ id: ConnectionID) {
        guard var connection = connections[id], connection.state == .opening else { return }
        connection.state = .abandoned
        connections[id] = connection
        origins[connection.origin]?.opening -= 1
    }
}

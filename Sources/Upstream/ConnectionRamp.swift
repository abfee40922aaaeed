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
/// or a stream frees up. When the connection being opened fails, every waiting call goes to
/// curl at once (as without the ramp): a provider that does not answer handshakes costs a call
/// one connect timeout, not one per call ahead of it. The driver counts the wait against the
/// call's total timeout.
///
/// The counts are a model of libcurl's pool: where they are wrong, they err towards letting
/// calls go (curl's own behaviour). A call let go into a free stream that opens a connection
/// anyway (a provider allowing fewer streams, a GOAWAY the ramp did not see) makes each of the
/// origin's connections take no more than it holds then.
///
/// Pure: the curl driver feeds it curl's events and adds the calls it lets go. What a call holds
/// (`Seat`) lives with the call.
struct ConnectionRamp<Call: AnyObject> {
    typealias ConnectionID = Int

    /// Where one call stands.
    enum Seat: Equatable {
        /// Not counted (not HTTP/2, ended, or let go when a connection failed).
        case none
        case waiting
        /// Handed to curl, not yet on a connection; `opens`: expected to open one.
        case admitted(opens: Bool)
        /// Its connection is being opened (curl made the socket for it).
        case opening(ConnectionID)
        /// Its request went out on this connection.
        case riding(ConnectionID)
    }

    /// How a pre-request callback names the connection a request goes out on: libcurl 7.88 has
    /// no connection id for it (and `CURLINFO_ACTIVESOCKET` tells the previous transfer's).
    struct Address: Hashable {
        var remoteIP: String
        var localIP: String
        var localPort: Int32
    }

    private struct Origin {
        var connectionsByAddress: [Address: ConnectionID] = [:]
        /// Streams the ready connections have room for.
        var freeStreams = 0
        /// Calls admitted into free streams, not yet on one.
        var admitted = 0
        /// A call admitted to open a connection has not done so yet.
        var probing = false
        /// Connections being opened.
        var opening = 0
        /// A connection failed while being opened: let every waiting call go.
        var flushing = false
        var waiting = CircularBuffer<Call>()
        /// Calls in `waiting` that gave up (taken out lazily: a cancel costs no search).
        var withdrawn: Set<ObjectIdentifier> = []

        var waitingCount: Int { waiting.count - withdrawn.count }
    }

    private struct Connection {
        /// `draining`: a GOAWAY came (its calls are being sent again elsewhere): no room on it.
        enum State { case opening, ready, draining, abandoned }
        let origin: String
        var state = State.opening
        var address: Address?
        var streams = 0
        /// Streams it takes: `streamsPerConnection`, or fewer once seen full below it.
        var limit: Int
        /// Sockets curl opened for it and has not closed (happy eyeballs tries several addresses).
        var sockets = 1
    }

    /// `CURLMOPT_MAX_CONCURRENT_STREAMS`: the streams libcurl puts on one connection at most.
    let streamsPerConnection: Int
    private var origins: [String: Origin] = [:]
    private var connections: [ConnectionID: Connection] = [:]
    private var socketConnections: [Int32: ConnectionID] = [:]
    private var nextConnection: ConnectionID = 0
    private var waitingCalls = 0

    init(streamsPerConnection: Int) {
        self.streamsPerConnection = max(1, streamsPerConnection)
    }

    /// What the ramp counts a call's connections under (`https://host[:port]`, host in lower case,
    /// no `:443`), or nil: only HTTPS URLs, where HTTP/2 is negotiated. Not the CA list: libcurl
    /// shares a connection between providers of one origin whose `ca_file`s hold the same
    /// certificates (their lists are separate arrays); two with different lists at one origin
    /// (rare) may make a call wait for a handshake it then cannot use.
    static func origin(of url: String) -> String? {
        let utf8 = url.utf8
        guard utf8.count > 8, utf8.starts(with: "https://".utf8) else { return nil }
        let authority = utf8.index(utf8.startIndex, offsetBy: 8)
        let end = utf8[authority...].firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }) ?? utf8.endIndex
        var origin = String(url[..<end]).lowercased()
        if origin.hasSuffix(":443") { origin.removeLast(4) }
        return origin
    }

    /// A call to `origin` starts: whether it goes to curl now (else it waits for `release`).
    mutating func arrive(_ call: Call, origin: String, seat: inout Seat) -> Bool {
        let admission = Self.arrive(call, &origins[origin, default: Origin()])
        seat = admission ?? .waiting
        if admission == nil { waitingCalls += 1 }
        return admission != nil
    }

    /// Waiting calls that may go to curl now, with their seats.
    mutating func release() -> [(Call, Seat)] {
        guard waitingCalls > 0 else { return [] }
        var released: [(Call, Seat)] = []
        for origin in origins.compactMap({ $0.value.waitingCount > 0 ? $0.key : nil }) {
            Self.release(&origins[origin]!, into: &released)
        }
        waitingCalls -= released.count
        return released
    }

    /// The calls still waiting (withdrawn ones left out).
    var waiting: [Call] {
        guard waitingCalls > 0 else { return [] }
        return origins.values.flatMap { state in state.waiting.filter { !state.withdrawn.contains(ObjectIdentifier($0)) } }
    }

    /// Takes every waiting call off the ramp (shutdown).
    mutating func takeAllWaiting() -> [Call] {
        let calls = waiting
        for origin in Array(origins.keys) {
            origins[origin]!.waiting.removeAll()
            origins[origin]!.withdrawn.removeAll()
        }
        waitingCalls = 0
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
            // Another address of the same connection (happy eyeballs).
            connections[id]?.sockets += 1
            socketConnections[fd] = id
            return true
        case .admitted(let opens):
            resolveAdmission(opens: opens, origin: origin)
            if !opens { learnLimits(origin) }
        case .riding(let id):
            drain(id)
            guard let state = origins[origin], state.opening == 0, !state.probing else { return false }
            setStreams(id, (connections[id]?.streams ?? 1) - 1)
        case .none, .waiting:
            return true
        }
        let id = nextConnection
        nextConnection += 1
        connections[id] = Connection(origin: origin, limit: streamsPerConnection)
        socketConnections[fd] = id
        origins[origin, default: Origin()].opening += 1
        seat = .opening(id)
        return true
    }

    /// The call's request goes out on the connection at `address` (curl's pre-request callback).
    mutating func requestGoingOut(on address: Address, origin: String, seat: inout Seat) {
        let on = origins[origin]?.connectionsByAddress[address]
        switch seat {
        case .opening(let id) where on == nil && connections[id]?.state == .opening:
            // The connection it opened is ready, and carries it.
            connections[id]!.state = .ready
            connections[id]!.address = address
            origins[origin, default: Origin()].connectionsByAddress[address] = id
            origins[origin, default: Origin()].opening -= 1
            origins[origin, default: Origin()].freeStreams += connections[id]!.limit
            setStreams(id, 1)
            seat = .riding(id)
            return
        case .opening(let id):
            abandon(id, failed: false)
        case .admitted(let opens):
            resolveAdmission(opens: opens, origin: origin)
        case .riding(let id):
            if id == on { return }
            setStreams(id, (connections[id]?.streams ?? 1) - 1)
        case .none, .waiting:
            return
        }
        guard let on, let connection = connections[on], connection.state == .ready else {
            seat = .none  // a connection the ramp did not see opened, or a draining one: not counted
            return
        }
        setStreams(on, connection.streams + 1)
        seat = .riding(on)
    }

    /// The call ended (done, failed or cancelled), wherever it stood. `failed`: it failed (not
    /// cancelled) before its connection was ready.
    mutating func ended(_ call: Call, origin: String, seat: inout Seat, failed: Bool = false) {
        switch seat {
        case .waiting:
            origins[origin]?.withdrawn.insert(ObjectIdentifier(call))
            waitingCalls -= 1
        case .admitted(let opens):
            resolveAdmission(opens: opens, origin: origin)
        case .opening(let id):
            abandon(id, failed: failed)
        case .riding(let id):
            setStreams(id, (connections[id]?.streams ?? 1) - 1)
        case .none:
            break
        }
        seat = .none
    }

    /// Curl closed socket `fd`. Calls still riding the connection leave it when they end.
    mutating func socketClosed(_ fd: Int32) {
        guard let id = socketConnections.removeValue(forKey: fd), var connection = connections[id] else { return }
        connection.sockets -= 1
        // Still being opened: curl may try the next address; its opener says how it ends.
        guard connection.sockets == 0, connection.state != .opening else {
            connections[id] = connection
            return
        }
        setLimit(id, 0)  // no room left on it
        connections[id] = nil
        if let address = connection.address { origins[connection.origin]?.connectionsByAddress[address] = nil }
    }

    /// How `origin` stands, for tests.
    func counts(_ origin: String) -> (free: Int, opening: Int, waiting: Int, connections: Int) {
        let state = origins[origin] ?? Origin()
        return (state.freeStreams, state.opening, state.waitingCount,
                connections.values.filter { $0.origin == origin && $0.state != .abandoned }.count)
    }

    // MARK: - Admission

    private static func arrive(_ call: Call, _ state: inout Origin) -> Seat? {
        if state.waitingCount == 0, let admission = admission(&state) { return admission }
        state.waiting.append(call)
        return nil
    }

    private static func release(_ state: inout Origin, into released: inout [(Call, Seat)]) {
        while let call = state.waiting.first {
            if state.withdrawn.remove(ObjectIdentifier(call)) != nil {
                state.waiting.removeFirst()
                continue
            }
            guard let seat = state.flushing ? Seat.none : admission(&state) else { return }
            released.append((state.waiting.removeFirst(), seat))
        }
        state.flushing = false
    }

    /// The seat a call gets now, if any: a free stream not promised to another admitted call,
    /// or, with none, leave to open a connection when none is being opened or about to be.
    private static func admission(_ state: inout Origin) -> Seat? {
        if state.freeStreams - state.admitted > 0 {
            state.admitted += 1
            return .admitted(opens: false)
        }
        guard state.opening == 0, !state.probing else { return nil }
        state.probing = true
        state.flushing = false  // (a failure with nobody waiting)
        return .admitted(opens: true)
    }

    private mutating func resolveAdmission(opens: Bool, origin: String) {
        if opens { origins[origin]?.probing = false } else { origins[origin]?.admitted -= 1 }
    }

    // MARK: - Connections

    /// Sets a connection's stream count, keeping its origin's free streams the sum of the ready
    /// connections' room (so no sequence of events can make them drift).
    private mutating func setStreams(_ id: ConnectionID, _ streams: Int) {
        update(id) { $0.streams = streams }
    }

    private mutating func setLimit(_ id: ConnectionID, _ limit: Int) {
        update(id) { $0.limit = limit }
    }

    private mutating func update(_ id: ConnectionID, _ change: (inout Connection) -> Void) {
        guard var connection = connections[id] else { return }
        let roomBefore = max(0, connection.limit - connection.streams)
        change(&connection)
        if connection.state == .ready {
            origins[connection.origin]?.freeStreams += max(0, connection.limit - connection.streams) - roomBefore
        }
        connections[id] = connection
    }

    /// A call let go into a free stream opened a connection instead: libcurl found no room on
    /// any (a provider allowing fewer streams, a GOAWAY unseen). Each connection takes what it
    /// holds now, and gets room back as its calls end.
    private mutating func learnLimits(_ origin: String) {
        for (id, connection) in connections where connection.origin == origin && connection.state == .ready {
            setLimit(id, min(connection.limit, connection.streams))
        }
    }

    /// A call riding the connection is sent again elsewhere: a GOAWAY came, no call joins it now.
    private mutating func drain(_ id: ConnectionID) {
        guard connections[id]?.state == .ready else { return }
        setLimit(id, 0)
        connections[id]!.state = .draining
    }

    /// Its opener ended, or went elsewhere, before the connection was ready: libcurl closes it.
    /// If it failed, the calls waiting for it go to curl as they are.
    private mutating func abandon(_ id: ConnectionID, failed: Bool) {
        guard var connection = connections[id], connection.state == .opening else { return }
        origins[connection.origin]?.opening -= 1
        // (With nobody waiting, nothing to let go; a later queue waits for the next opener.)
        if failed, let state = origins[connection.origin], state.waitingCount > 0 { origins[connection.origin]?.flushing = true }
        connection.state = .abandoned
        connections[id] = connection.sockets == 0 ? nil : connection
    }
}

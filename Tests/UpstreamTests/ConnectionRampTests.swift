import Testing
@testable import Upstream

/// The ramp alone, fed curl's events by hand. 4 streams per connection keep the numbers small.
@Suite struct ConnectionRampTests {
    final class Call: CustomStringConvertible {
        let name: String
        var seat = ConnectionRamp<Call>.Seat.none
        init(_ name: String) { self.name = name }
        var description: String { name }
    }

    static let origin = "https://api.example.com"
    var ramp = ConnectionRamp<Call>(streamsPerConnection: 4)

    /// Calls `names`, in order; returns those that went to curl at once.
    mutating func arrive(_ calls: [Call]) -> [String] {
        calls.filter { ramp.arrive($0, origin: Self.origin, seat: &$0.seat) }.map(\.name)
    }

    mutating func release() -> [String] {
        ramp.release().map { call, seat in
            call.seat = seat
            return call.name
        }
    }

    @discardableResult
    mutating func opens(_ call: Call, socket: Int32) -> Bool { ramp.socketOpened(socket, origin: Self.origin, seat: &call.seat) }
    mutating func goesOut(_ call: Call, port: Int32, remote: String = "10.0.0.1") {
        ramp.requestGoingOut(on: .init(remoteIP: remote, localIP: "10.0.0.2", localPort: port), origin: Self.origin, seat: &call.seat)
    }
    mutating func ends(_ call: Call, failed: Bool = false) { ramp.ended(call, origin: Self.origin, seat: &call.seat, failed: failed) }
    var counts: (free: Int, opening: Int, waiting: Int, connections: Int) { ramp.counts(Self.origin) }

    @Test("the origin of an HTTPS URL; none for cleartext")
    func origins() {
        #expect(ConnectionRamp<Call>.origin(of: "https://api.openai.com/v1/chat/completions") == "https://api.openai.com")
        #expect(ConnectionRamp<Call>.origin(of: "https://127.0.0.1:8443/v1") == "https://127.0.0.1:8443")
        #expect(ConnectionRamp<Call>.origin(of: "https://host?x=1") == "https://host")
        #expect(ConnectionRamp<Call>.origin(of: "https://host") == "https://host")
        #expect(ConnectionRamp<Call>.origin(of: "http://127.0.0.1:8080/v1") == nil)
        // As libcurl matches connections: the host in any case, the default port said or not.
        #expect(ConnectionRamp<Call>.origin(of: "https://API.OpenAI.com:443/v1") == "https://api.openai.com")
    }

    @Test("calls wait while the first connection is opened, then fill it; the one past its room opens the next")
    mutating func rampUp() {
        let calls = (0..<10).map { Call("c\($0)") }
        #expect(arrive(calls) == ["c0"])
        #expect(calls[0].seat == .admitted(opens: true))
        opens(calls[0], socket: 7)
        #expect(counts.opening == 1 && counts.waiting == 9)
        #expect(release() == [])  // still opening
        goesOut(calls[0], port: 50_001)
        #expect(calls[0].seat == .riding(0))
        #expect(counts.free == 3)
        // Three fit; the fourth may open the next connection; the rest wait for it.
        #expect(release() == ["c1", "c2", "c3", "c4"])
        #expect(calls[4].seat == .admitted(opens: true))
        for call in calls[1...3] { goesOut(call, port: 50_001) }
        #expect(counts.free == 0)
        opens(calls[4], socket: 8)
        #expect(release() == [])
        goesOut(calls[4], port: 50_002)
        #expect(release() == ["c5", "c6", "c7", "c8"])
        #expect(counts.waiting == 1 && counts.connections == 2)
        // A stream frees up on the first connection before the next one is opened: c9 takes it.
        for call in calls[5...7] { goesOut(call, port: 50_002) }
        ends(calls[1])
        #expect(release() == ["c9"])
        #expect(calls[9].seat == .admitted(opens: false))
        goesOut(calls[9], port: 50_001)
        #expect(calls[9].seat == .riding(0))
        // c8 was to open a third connection but found c1's freed stream first.
        ends(calls[2])
        goesOut(calls[8], port: 50_001)
        #expect(calls[8].seat == .riding(0))
        #expect(counts.free == 0 && counts.opening == 0 && counts.connections == 2)
    }

    @Test("a call arriving while others wait queues behind them, even when room appears")
    mutating func firstComeFirstServed() {
        let a = Call("a"), b = Call("b"), c = Call("c")
        #expect(arrive([a, b]) == ["a"])
        opens(a, socket: 7)
        goesOut(a, port: 40_000)
        #expect(arrive([c]) == [])  // b is first
        #expect(release() == ["b", "c"])
    }

    @Test("a connection that fails while being opened lets every waiting call go at once, uncounted: none waits behind handshake after handshake")
    mutating func failedOpener() {
        let a = Call("a"), b = Call("b"), c = Call("c")
        #expect(arrive([a, b, c]) == ["a"])
        opens(a, socket: 7)
        ramp.socketClosed(7)  // refused; curl had no other address to try
        ends(a, failed: true)
        #expect(counts.opening == 0 && counts.connections == 0)
        #expect(release() == ["b", "c"])
        #expect(b.seat == .none && c.seat == .none)
        // The next call finds no connection and opens one, counted again.
        let d = Call("d"), e = Call("e")
        #expect(arrive([d, e]) == ["d"])
        #expect(d.seat == .admitted(opens: true))
    }

    @Test("an opener cancelled before its connection is ready hands the opening to the next waiting call")
    mutating func cancelledOpener() {
        let a = Call("a"), b = Call("b"), c = Call("c")
        #expect(arrive([a, b, c]) == ["a"])
        opens(a, socket: 7)
        ends(a)  // the client went away
        #expect(release() == ["b"])
        #expect(b.seat == .admitted(opens: true))
        // libcurl closes the abandoned connection's socket later: nothing counted twice.
        ramp.socketClosed(7)
        #expect(counts.opening == 0 && counts.connections == 0)
    }

    @Test("a failure with nobody waiting does not let a later queue go uncounted")
    mutating func staleFailure() {
        let a = Call("a")
        #expect(arrive([a]) == ["a"])
        opens(a, socket: 7)
        ends(a, failed: true)
        let b = Call("b"), c = Call("c")
        #expect(arrive([b, c]) == ["b"])
        #expect(release() == [])
    }

    @Test("a call that gives up while waiting leaves the queue")
    mutating func cancelledWhileWaiting() {
        let a = Call("a"), b = Call("b"), c = Call("c")
        #expect(arrive([a, b, c]) == ["a"])
        #expect(ramp.waiting.map(\.name) == ["b", "c"])
        ends(b)
        #expect(b.seat == .none && counts.waiting == 1)
        #expect(ramp.waiting.map(\.name) == ["c"])  // what the driver's deadline scan looks at
        opens(a, socket: 7)
        goesOut(a, port: 40_000)
        #expect(release() == ["c"])
    }

    @Test("a closed connection takes its free streams with it; its calls ending later give none back")
    mutating func closedConnection() {
        let a = Call("a"), b = Call("b")
        #expect(arrive([a]) == ["a"])
        opens(a, socket: 7)
        goesOut(a, port: 40_000)
        #expect(arrive([b]) == ["b"])
        goesOut(b, port: 40_000)
        #expect(counts.free == 2)
        ramp.socketClosed(7)
        #expect(counts.free == 0 && counts.connections == 0)
        ends(a)
        ends(b)
        #expect(counts.free == 0)
        // The next call opens a new connection.
        let c = Call("c")
        #expect(arrive([c]) == ["c"])
        #expect(c.seat == .admitted(opens: true))
    }

    @Test("the first address refused, the next one's socket still belongs to the connection being opened")
    mutating func nextAddress() {
        let a = Call("a"), b = Call("b")
        #expect(arrive([a, b]) == ["a"])
        opens(a, socket: 7)
        ramp.socketClosed(7)
        #expect(counts.opening == 1 && counts.connections == 1)
        opens(a, socket: 8)
        goesOut(a, port: 40_000)
        #expect(a.seat == .riding(0) && counts.free == 3)
        #expect(release() == ["b"])
    }

    @Test("connections to two addresses of one origin may share a local port: told apart by the remote address")
    mutating func samePortTwoAddresses() {
        let calls = (0..<5).map { Call("c\($0)") }
        #expect(arrive(Array(calls[0...0])) == ["c0"])
        opens(calls[0], socket: 7)
        goesOut(calls[0], port: 40_000, remote: "10.0.0.1")
        #expect(arrive(Array(calls[1...4])) == ["c1", "c2", "c3", "c4"])
        for call in calls[1...3] { goesOut(call, port: 40_000, remote: "10.0.0.1") }
        opens(calls[4], socket: 8)
        goesOut(calls[4], port: 40_000, remote: "10.0.0.9")
        #expect(calls[4].seat == .riding(1))
        #expect(counts.free == 3 && counts.connections == 2)
        for call in calls { ends(call) }
        #expect(counts.free == 8)
    }

    @Test("a call let go into a free stream that opens a connection instead (the provider allows fewer streams): the origin's connections count as full")
    mutating func fewerStreamsThanCounted() {
        let calls = (0..<4).map { Call("c\($0)") }
        #expect(arrive(Array(calls[0...0])) == ["c0"])
        opens(calls[0], socket: 7)
        goesOut(calls[0], port: 40_000)
        #expect(arrive(Array(calls[1...2])) == ["c1", "c2"])
        goesOut(calls[1], port: 40_000)
        opens(calls[2], socket: 8)  // the provider allows 2 streams
        #expect(counts.free == 0 && counts.opening == 1)
        #expect(arrive([calls[3]]) == [])
        goesOut(calls[2], port: 40_001)
        #expect(release() == ["c3"])
        // A stream freeing up on the full connection counts again: 3 on the new one (c3 is not
        // on it yet), 1 on the first.
        ends(calls[1])
        #expect(counts.free == 4)
        // The first connection took 2: that is its room from now on; the new one keeps 4.
        goesOut(calls[3], port: 40_001)
        for call in calls { ends(call) }
        #expect(counts.free == 2 + 4)
    }

    @Test("happy eyeballs: the losing address family's socket closing leaves the connection")
    mutating func twoSocketsOneConnection() {
        let a = Call("a"), b = Call("b")
        #expect(arrive([a, b]) == ["a"])
        opens(a, socket: 7)
        opens(a, socket: 8)
        ramp.socketClosed(7)
        #expect(counts.opening == 1)
        goesOut(a, port: 40_000)
        #expect(release() == ["b"])
        ramp.socketClosed(8)
        #expect(counts.connections == 0 && counts.free == 0)
    }

    @Test("a call sent again on a new connection (GOAWAY) leaves its old one, which takes no more calls")
    mutating func sentAgainElsewhere() {
        let a = Call("a")
        #expect(arrive([a]) == ["a"])
        opens(a, socket: 7)
        goesOut(a, port: 40_000)
        #expect(counts.free == 3)
        // Its old connection is draining: no call may join it any more.
        opens(a, socket: 9)
        #expect(counts.free == 0 && counts.opening == 1)
        goesOut(a, port: 40_001)
        #expect(counts.free == 3)
        let b = Call("b")
        #expect(arrive([b]) == ["b"])
        goesOut(b, port: 40_000)  // had libcurl put it on the draining one, it is not counted there
        #expect(b.seat == .none && counts.free == 3)
    }

    @Test("a drain refusing many calls: libcurl's second send of the first opens one connection, the others are refused and wait for it when sent again")
    mutating func drainOpensOneConnection() {
        let calls = (0..<3).map { Call("c\($0)") }
        #expect(arrive([calls[0]]) == ["c0"])
        opens(calls[0], socket: 7)
        goesOut(calls[0], port: 40_000)
        #expect(release() == [])
        #expect(arrive([calls[1], calls[2]]) == ["c1", "c2"])
        goesOut(calls[1], port: 40_000)
        goesOut(calls[2], port: 40_000)
        // GOAWAY: libcurl sends all three again, each wanting a connection of its own.
        #expect(opens(calls[0], socket: 8))
        #expect(!opens(calls[1], socket: 9))
        #expect(!opens(calls[2], socket: 10))
        #expect(counts.opening == 1)
        // The refused two fail; the gateway sends them again as new calls, which wait.
        ends(calls[1])
        ends(calls[2])
        let again = [Call("c1'"), Call("c2'")]
        #expect(arrive(again) == [])
        ramp.socketClosed(7)  // the drained connection
        goesOut(calls[0], port: 40_001)
        #expect(release() == ["c1'", "c2'"])
        #expect(counts.connections == 1)
    }

    @Test("a call on a connection the ramp never saw opened is not counted")
    mutating func unknownConnection() {
        let a = Call("a"), b = Call("b")
        #expect(arrive([a, b]) == ["a"])
        goesOut(a, port: 40_000)  // joined without curl opening a socket for it
        #expect(a.seat == .none)
        #expect(release() == ["b"])
        #expect(b.seat == .admitted(opens: true))
    }

    @Test("origins ramp apart: a handshake to one holds no call to another")
    mutating func originsApart() {
        let a = Call("a"), b = Call("b")
        #expect(arrive([a]) == ["a"])
        opens(a, socket: 7)
        #expect(ramp.arrive(b, origin: "https://other.example.com", seat: &b.seat))
    }

    @Test("shutdown takes every waiting call")
    mutating func shutdown() {
        let calls = (0..<3).map { Call("c\($0)") }
        _ = arrive(calls)
        #expect(ramp.takeAllWaiting().map(\.name) == ["c1", "c2"])
        #expect(counts.waiting == 0)
    }
}

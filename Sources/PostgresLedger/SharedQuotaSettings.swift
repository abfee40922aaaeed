/// Timings and sizes of the shared quota state.
public struct SharedQuotaSettings: Sendable, Hashable {
    /// A replica not seen for this long is dead: its holds are reaped. Default 15 s.
    public var replicaTimeout: Duration
    /// How often each replica says it is alive. Default 2 s (well under `replicaTimeout`).
    public var heartbeatInterval: Duration
    /// How often each replica looks for holds to reap. Default 5 s.
    public var reapInterval: Duration
    /// A hold older than this, and than its call's longest life, is reaped even if its replica
    /// lives (a call that never settled). Default one hour, like `QuotaBook.abandonAfter`.
    public var holdExpiry: Duration
    /// PostgreSQL connections per event loop. Default 2.
    public var connectionsPerLoop: Int
    /// How long admission waits for PostgreSQL (connecting, or a reservation's answer) before it
    /// refuses the call. Default 5 s. Also the deadline of the book's other statements (settle,
    /// heartbeat, reads): one not answered in time closes its connection, and the next query
    /// reconnects (a hung connection is not used again).
    public var answerTimeout: Duration
    /// The longest a statement of the book runs on the server (PostgreSQL's `statement_timeout`
    /// on its connections), so that one whose answer was lost ends by then; also the deadline
    /// of the replica's slower statements (installing the functions, which waits for another
    /// replica doing the same; reaping; pruning). Default 60 s; keep it above `answerTimeout`.
    public var statementTimeout: Duration

    public init(replicaTimeout: Duration = .seconds(15), heartbeatInterval: Duration = .seconds(2),
                reapInterval: Duration = .seconds(5), holdExpiry: Duration = .seconds(3_600),
                connectionsPerLoop: Int = 2, answerTimeout: Duration = .seconds(5),
                statementTimeout: Duration = .seconds(60)) {
        self.answerTimeout = answerTimeout
        self.statementTimeout = statementTimeout
        self.replicaTimeout = replicaTimeout
        self.heartbeatInterval = heartbeatInterval
        self.reapInterval = reapInterval
        self.holdExpiry = holdExpiry
        self.connectionsPerLoop = connectionsPerLoop
    }

    /// The longest a dead replica's holds stay: its last heartbeat was at most this long before
    /// they are reaped (the reaper runs on every live replica).
    public var releaseBound: Duration { replicaTimeout + reapInterval }

    var holdExpirySeconds: Int64 { max(1, holdExpiry.components.seconds) }
    var replicaTimeoutMicros: Int64 { Self.micros(replicaTimeout) }

    static func micros(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    }
}

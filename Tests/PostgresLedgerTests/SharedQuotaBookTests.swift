import Foundation
import Logging
import Metering
import NIOCore
import NIOPosix
import Policy
@testable import PostgresLedger
import PostgresNIO
import XCTest

/// The shared quota state against a real PostgreSQL (`scripts/with-postgres.sh`). Each test
/// works in a schema of its own (`search_path`), with a minimal `calls` table standing in for
/// the ledger's, so tests neither see nor reap each other's holds.
final class SharedQuotaBookTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!
    private var books: [SharedQuotaBook] = []
    private var reapers: [QuotaReaper] = []
    private var configuration: PostgresConnection.Configuration!
    private let logger = Logger(label: "shared-quota-test")
    private let utc = TimeZone(identifier: "UTC")!
    /// A fixed instant (2026-12-02 12:00 UTC): periods are computed from it, not from the clock.
    private let now: Int64 = 1_796_212_800_000_000

    override func setUp() async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        if name.contains("WithoutAnswer") { return }  // needs no server
        let url = try TestDatabase.requireURL()
        let schema = "quota_test_\(UInt32.random(in: 0...UInt32.max))"
        var configuration = try PostgresLocation(url: url).connectionConfiguration
        let admin = try await PostgresConnection.connect(on: group.next(), configuration: configuration, id: 0, logger: logger)
        try await admin.query("CREATE SCHEMA \(unescaped: schema)", logger: logger)
        try await admin.query("""
            CREATE TABLE \(unescaped: schema).calls (
                id text PRIMARY KEY, started_at int8 NOT NULL, "user" text, team text, outcome text NOT NULL,
                cost_pd int8 NOT NULL, input_tokens int8 NOT NULL, cached_input_tokens int8 NOT NULL,
                cache_write_tokens int8 NOT NULL, output_tokens int8 NOT NULL)
            """, logger: logger)
        try await admin.close()
        configuration.options.additionalStartupParameters = [("search_path", schema)]
        self.configuration = configuration
    }

    override func tearDown() async throws {
        for reaper in reapers { reaper.stop() }
        for book in books { try? await book.shutdown(on: group.next()).get() }
        try await group?.shutdownGracefully()
    }

    private func makeBook(replica: String, settings: SharedQuotaSettings = SharedQuotaSettings()) async throws -> SharedQuotaBook {
        let book = SharedQuotaBook(configuration: configuration, replica: replica, settings: settings, logger: logger)
        books.append(book)
        try await book.prepare(on: group.next()).get()
        return book
    }

    /// A connection of the test's own, to its schema.
    private func connect() async throws -> PostgresConnection {
        try await PostgresConnection.connect(on: group.next(), configuration: configuration, id: 0, logger: logger)
    }

    /// A book of `replica` with one call, `callID`, holding $10 and 100 tokens of `user`'s $1,000
    /// daily budget.
    private func book(replica: String, holdingOneCall callID: String, of user: String) async throws -> SharedQuotaBook {
        let book = try await makeBook(replica: replica)
        let budgets = [BudgetLimit(scope: .user(user), period: .day, usd: dollars(1_000))]
        _ = try await book.reserve(callID: callID, budgets: budgets, cost: dollars(10), tokens: 100,
                                   now: now, timeZone: utc, on: group.next()).get().get()
        return book
    }

    private func ledgerRow(id: String, startedAt: Int64, user: String?, team: String?, cost: Int64, tokens: Int64,
                           outcome: String = "ok") async throws {
        let connection = try await connect()
        try await connection.query("""
            INSERT INTO calls VALUES (\(id), \(startedAt), \(user), \(team), \(outcome), \(cost), \(tokens), 0, 0, 0)
            """, logger: logger)
        try await connection.close()
    }

    private func counter(_ book: SharedQuotaBook, _ scope: PayerScope, _ period: BudgetPeriod) async throws -> SharedQuotaCounter? {
        let start = CalendarPeriod(timeZone: utc).interval(of: period, containing: now).start
        return try await book.counter(scope: scope, period: period, periodStart: start, on: group.next()).get()
    }

    private func dollars(_ cents: Int64) -> Money { Money(picodollars: cents * 10_000_000_000) }

    // MARK: (a) concurrency across replicas

    /// 200 reservations at once from four replicas (own connections, two event loops) for five
    /// users whose daily budget fits exactly 7 calls: exactly 7 per user are admitted, and the
    /// counters hold exactly their reservations, then their spend.
    func testConcurrentReservationsFromSeveralReplicasAdmitExactlyTheBudget() async throws {
        var replicas: [SharedQuotaBook] = []
        for index in 0..<4 { replicas.append(try await makeBook(replica: "replica-\(index)")) }
        let cost = dollars(3), fits = 7
        let users = (0..<5).map { "user\($0)" }
        let budgetsOf: [String: [BudgetLimit]] = Dictionary(uniqueKeysWithValues: users.map { user in
            (user, [BudgetLimit(scope: .user(user), period: .day, usd: Money(picodollars: cost.picodollars * Int64(fits))),
                    BudgetLimit(scope: .team("eng"), period: .month, usd: dollars(1_000_000)),
                    BudgetLimit(scope: .org, period: .week, tokens: 10_000_000)])
        })
        let attempts = (0..<200).map { index in (id: "call-\(index)", user: users[index % users.count], book: replicas[index % replicas.count]) }
        let results = try await withThrowingTaskGroup(of: (String, String, Bool).self) { tasks in
            for attempt in attempts {
                let loop = group.next(), budgets = budgetsOf[attempt.user]!, now = self.now, utc = self.utc
                tasks.addTask {
                    let result = try await attempt.book.reserve(callID: attempt.id, budgets: budgets, cost: cost, tokens: 100,
                                                                now: now, timeZone: utc, on: loop).get()
                    if case .failure(let refusal) = result {
                        XCTAssertEqual(refusal.limit.scope, .user(attempt.user))
                        XCTAssertEqual(refusal.exceeded, .usd)
                    }
                    return (attempt.id, attempt.user, (try? result.get()) != nil)
                }
            }
            var all: [(String, String, Bool)] = []
            for try await result in tasks { all.append(result) }
            return all
        }
        for user in users {
            XCTAssertEqual(results.filter { $0.1 == user && $0.2 }.count, fits, "admitted calls of \(user)")
            let held = try await counter(replicas[0], .user(user), .day)
            XCTAssertEqual(held, SharedQuotaCounter(spent: 0, reserved: Int128(cost.picodollars) * Int128(fits),
                                                    spentTokens: 0, reservedTokens: 100 * Int128(fits)))
        }
        let admitted = results.filter(\.2)
        let openHolds = try await replicas[0].openHolds(on: group.next()).get()
        XCTAssertEqual(openHolds, admitted.count)
        let team = try await counter(replicas[0], .team("eng"), .month)
        XCTAssertEqual(team?.reserved, Int128(cost.picodollars) * Int128(admitted.count))
        let org = try await counter(replicas[0], .org, .week)
        XCTAssertEqual(org?.reservedTokens, 100 * Int128(admitted.count))

        // Each settles with its actual cost on another replica than the one that reserved it.
        for (offset, call) in admitted.enumerated() {
            let settled = try await replicas[(offset + 1) % replicas.count]
                .settle(callID: call.0, cost: dollars(2), tokens: 80, on: group.next()).get()
            XCTAssertTrue(settled)
        }
        for user in users {
            let spent = try await counter(replicas[0], .user(user), .day)
            XCTAssertEqual(spent, SharedQuotaCounter(spent: Int128(dollars(2).picodollars) * Int128(fits), reserved: 0,
                                                     spentTokens: 80 * Int128(fits), reservedTokens: 0))
        }
        let left = try await replicas[0].openHolds(on: group.next()).get()
        XCTAssertEqual(left, 0)
    }

    /// Reservations, settlements and reaping all at once, on counters that do not exist yet and
    /// that many calls share (team, org) with budgets listed in different orders: no deadlock,
    /// no error, and the counters end exactly at the sum of what was settled.
    func testMixedLoadNeitherDeadlocksNorLosesAnAmount() async throws {
        let fast = SharedQuotaSettings(replicaTimeout: .milliseconds(300), heartbeatInterval: .milliseconds(100),
                                       reapInterval: .milliseconds(50))
        var replicas: [SharedQuotaBook] = []
        for index in 0..<3 { replicas.append(try await makeBook(replica: "mixed-\(index)", settings: fast)) }
        for replica in replicas {
            let reaper = QuotaReaper(book: replica, on: group.next())
            reapers.append(reaper)
            reaper.start()
        }
        let dead = try await makeBook(replica: "mixed-dead", settings: fast)  // never heartbeats again
        let big = dollars(1_000_000)
        func budgets(_ index: Int) -> [BudgetLimit] {
            var list = [BudgetLimit(scope: .user("u\(index % 10)"), period: .day, usd: big),
                        BudgetLimit(scope: .team("t\(index % 3)"), period: .week, usd: big),
                        BudgetLimit(scope: .team("t\(index % 3)"), period: .day, usd: big),
                        BudgetLimit(scope: .org, period: .month, usd: big),
                        BudgetLimit(scope: .org, period: .day, tokens: 1_000_000_000)]
            if index % 2 == 1 { list.reverse() }
            return list
        }
        let now = self.now, utc = self.utc, five = dollars(5), three = dollars(3)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for index in 0..<300 {
                let book = index % 7 == 0 ? dead : replicas[index % replicas.count]
                let loop = group.next(), list = budgets(index)
                tasks.addTask {
                    _ = try await book.reserve(callID: "m-\(index)", budgets: list, cost: five, tokens: 50,
                                               now: now, timeZone: utc, on: loop).get().get()
                    // The dead replica's calls are never settled: the reapers give them back.
                    if book !== dead {
                        let settled = try await book.settle(callID: "m-\(index)", cost: three, tokens: 30, on: loop).get()
                        XCTAssertTrue(settled)
                    }
                }
            }
            try await tasks.waitForAll()
        }
        let loop = group.next()
        var open = try await replicas[0].openHolds(on: loop).get()
        for _ in 0..<100 where open > 0 {
            try await Task.sleep(for: .milliseconds(20))
            open = try await replicas[0].openHolds(on: loop).get()
        }
        XCTAssertEqual(open, 0)
        let settledCalls = (0..<300).filter { $0 % 7 != 0 }.count
        let org = try await counter(replicas[0], .org, .month)
        XCTAssertEqual(org, SharedQuotaCounter(spent: Int128(dollars(3).picodollars) * Int128(settledCalls), reserved: 0,
                                               spentTokens: 30 * Int128(settledCalls), reservedTokens: 0))
        let t0 = try await counter(replicas[0], .team("t0"), .day)
        let t0Calls = (0..<300).filter { $0 % 7 != 0 && $0 % 3 == 0 }.count
        XCTAssertEqual(t0?.spent, Int128(dollars(3).picodollars) * Int128(t0Calls))
        XCTAssertEqual(t0?.reserved, 0)
    }

    // MARK: (b) settle and release

    func testSettleAndReleaseArithmeticIsIdempotent() async throws {
        let book = try await makeBook(replica: "solo")
        let loop = group.next()
        let budgets = [BudgetLimit(scope: .user("ann"), period: .day, usd: dollars(100), tokens: 5_000),
                       BudgetLimit(scope: .user("ann"), period: .day, usd: dollars(50)),  // same bucket, tighter
                       BudgetLimit(scope: .team("ops"), period: .month, usd: dollars(1_000))]
        let first = try await book.reserve(callID: "b-1", budgets: budgets, cost: dollars(10), tokens: 1_000,
                                           now: now, timeZone: utc, on: loop).get().get()
        XCTAssertEqual(first.standings.map(\.usdLeft), [dollars(100), dollars(50), dollars(1_000)])
        var ann = try await counter(book, .user("ann"), .day)
        XCTAssertEqual(ann, SharedQuotaCounter(spent: 0, reserved: Int128(dollars(10).picodollars), spentTokens: 0,
                                               reservedTokens: 1_000), "one hold per bucket, though two budgets name it")

        // Actual below the reservation: the difference is given back.
        let settled = try await book.settle(callID: "b-1", cost: dollars(6), tokens: 700, on: loop).get()
        XCTAssertTrue(settled)
        let again = try await book.settle(callID: "b-1", cost: dollars(6), tokens: 700, on: loop).get()
        XCTAssertFalse(again)
        ann = try await counter(book, .user("ann"), .day)
        XCTAssertEqual(ann, SharedQuotaCounter(spent: Int128(dollars(6).picodollars), reserved: 0, spentTokens: 700,
                                               reservedTokens: 0))

        _ = try await book.reserve(callID: "b-2", budgets: budgets, cost: dollars(20), tokens: 1_000,
                                   now: now, timeZone: utc, on: loop).get().get()
        let released = try await book.release(callID: "b-2", on: loop).get()
        XCTAssertTrue(released)
        let releasedAgain = try await book.release(callID: "b-2", on: loop).get()
        XCTAssertFalse(releasedAgain)
        ann = try await counter(book, .user("ann"), .day)
        XCTAssertEqual(ann, SharedQuotaCounter(spent: Int128(dollars(6).picodollars), reserved: 0, spentTokens: 700,
                                               reservedTokens: 0))
        let team = try await counter(book, .team("ops"), .month)
        XCTAssertEqual(team?.spent, Int128(dollars(6).picodollars))
        XCTAssertEqual(team?.reserved, 0)

        // The tighter budget of the same bucket refuses: $6 spent + $45 > $50.
        let refused = try await book.reserve(callID: "b-3", budgets: budgets, cost: dollars(45), tokens: 10,
                                             now: now, timeZone: utc, on: loop).get()
        guard case .failure(let refusal) = refused else { return XCTFail("expected a refusal, got \(refused)") }
        XCTAssertEqual(refusal.limit, budgets[1])
        XCTAssertEqual(refusal.exceeded, .usd)
        XCTAssertEqual(refusal.spent, dollars(6))
        XCTAssertEqual(refusal.requested, dollars(45))
        XCTAssertEqual(refusal.resetsAt, CalendarPeriod(timeZone: utc).interval(of: .day, containing: now).end)
        // Tokens: 700 spent + 4_400 > 5_000.
        let byTokens = try await book.reserve(callID: "b-4", budgets: budgets, cost: dollars(1), tokens: 4_400,
                                              now: now, timeZone: utc, on: loop).get()
        guard case .failure(let tokenRefusal) = byTokens else { return XCTFail("expected a refusal, got \(byTokens)") }
        XCTAssertEqual(tokenRefusal.exceeded, .tokens)
        XCTAssertEqual(tokenRefusal.spentTokens, 700)
        let holds = try await book.openHolds(on: loop).get()
        XCTAssertEqual(holds, 0, "a refused call holds nothing")
    }

    /// Settlements made while one is in flight on their loop go together in the next statement:
    /// 40 calls settled in one pass of a loop take two statements (the first goes alone), each
    /// call settles once (one named twice in a batch is answered true once), and the counters end
    /// exactly at the sum of the spend with nothing left reserved.
    func testSettlementsMadeWhileOneIsInFlightGoTogether() async throws {
        let book = try await makeBook(replica: "batch")
        let loop = group.next()
        let budgets = [BudgetLimit(scope: .user("bo"), period: .day, usd: dollars(10_000)),
                       BudgetLimit(scope: .team("ops"), period: .month, usd: dollars(100_000))]
        for index in 0..<40 {
            _ = try await book.reserve(callID: "s-\(index)", budgets: budgets, cost: dollars(10), tokens: 100,
                                       now: now, timeZone: utc, on: loop).get().get()
        }
        let before = book.settlementStatements
        let ids = (0..<40).map { "s-\($0)" } + ["s-7"]
        let three = dollars(3)
        let settled = try await loop.flatSubmit {
            EventLoopFuture.whenAllSucceed(ids.map { book.settle(callID: $0, cost: three, tokens: 30, on: loop) }, on: loop)
        }.get()
        XCTAssertEqual(Array(settled.prefix(40)), Array(repeating: true, count: 40))
        XCTAssertFalse(settled[40], "the second settlement of s-7 in the same batch changes nothing")
        XCTAssertEqual(book.settlementStatements - before, 2)
        for (scope, period) in [(PayerScope.user("bo"), BudgetPeriod.day), (.team("ops"), .month)] {
            let counted = try await counter(book, scope, period)
            XCTAssertEqual(counted, SharedQuotaCounter(spent: Int128(three.picodollars) * 40, reserved: 0,
                                                       spentTokens: 1_200, reservedTokens: 0))
        }
        let holds = try await book.openHolds(on: loop).get()
        XCTAssertEqual(holds, 0)
    }

    /// Reservations made while one is in flight on their loop go together in the next statement,
    /// admitted in the order they were made, each seeing the holds of those before it: of 20
    /// calls whose user's budget fits 7, the first 7 are admitted and the next 12 refused with
    /// the 7 holds counted; the last, which costs nothing, still fits (the refused reserved
    /// nothing); 2 statements in all; one hold per bucket, though two budgets name it.
    func testReservationsMadeWhileOneIsInFlightGoTogetherInOrder() async throws {
        let book = try await makeBook(replica: "reserve-batch")
        let loop = group.next()
        let cost = dollars(3)
        let budgets = [BudgetLimit(scope: .user("ida"), period: .day, usd: Money(picodollars: cost.picodollars * 7)),
                       BudgetLimit(scope: .team("ops"), period: .month, usd: dollars(1_000)),
                       BudgetLimit(scope: .team("ops"), period: .month, tokens: 1_000_000)]  // same bucket
        let before = book.reservationStatements
        let now = self.now, utc = self.utc
        let results = try await loop.flatSubmit {
            EventLoopFuture.whenAllSucceed((0..<20).map { index in
                book.reserve(callID: "r-\(index)", budgets: budgets, cost: index == 19 ? .zero : cost, tokens: 100,
                             now: now, timeZone: utc, on: loop)
            }, on: loop)
        }.get()
        XCTAssertEqual(book.reservationStatements - before, 2, "the first alone, the other 19 together")
        for (index, result) in results.enumerated() {
            switch result {
            case .success(let reservation):
                XCTAssert(index < 7 || index == 19, "r-\(index) admitted")
                XCTAssertEqual(reservation.standings.first?.usdLeft, Money(picodollars: cost.picodollars * Int64(max(0, 7 - index))))
            case .failure(let refusal):
                XCTAssert(index >= 7 && index < 19, "r-\(index) refused")
                XCTAssertEqual(refusal.limit, budgets[0])
                XCTAssertEqual(refusal.reserved, Money(picodollars: cost.picodollars * 7))
            }
        }
        let ida = try await counter(book, .user("ida"), .day)
        XCTAssertEqual(ida, SharedQuotaCounter(spent: 0, reserved: Int128(cost.picodollars) * 7, spentTokens: 0,
                                               reservedTokens: 800))
        let ops = try await counter(book, .team("ops"), .month)
        XCTAssertEqual(ops, ida, "one hold per bucket")
        let holds = try await book.openHolds(on: loop).get()
        XCTAssertEqual(holds, 8)
    }

    /// A batch that PostgreSQL fails for what one call carried (here: its id already holds) is
    /// sent again call by call, so only that call fails; the others are admitted once each. The
    /// failed one is not released (its statement was rolled back): the hold of that id stays.
    func testABatchTheServerFailsIsRetriedCallByCall() async throws {
        let settings = SharedQuotaSettings(statementTimeout: .seconds(1))
        let book = try await makeBook(replica: "reserve-retry", settings: settings)
        let loop = group.next()
        let budgets = [BudgetLimit(scope: .user("jo"), period: .day, usd: dollars(1_000))]
        _ = try await book.reserve(callID: "held", budgets: budgets, cost: dollars(1), tokens: 1, now: now,
                                   timeZone: utc, on: loop).get().get()
        let before = book.reservationStatements
        let now = self.now, utc = self.utc, two = dollars(2)
        let results = try await loop.flatSubmit {
            EventLoopFuture.whenAllComplete(["a-0", "a-1", "held", "a-2"].map { id in
                book.reserve(callID: id, budgets: budgets, cost: two, tokens: 1, now: now, timeZone: utc, on: loop)
            }, on: loop)
        }.get()
        XCTAssertEqual(book.reservationStatements - before, 5, "a-0 alone, then the batch of 3, then each of the 3")
        for (index, result) in results.enumerated() {
            switch result {
            case .success(.success(let reservation)): XCTAssertNotEqual(index, 2, "\(reservation.callID) admitted")
            case .success(.failure(let refusal)): XCTFail("unexpected refusal \(refusal)")
            case .failure(let error):
                XCTAssertEqual(index, 2, "only the call whose id holds fails: \(error)")
                XCTAssertEqual((error as? PSQLError)?.code, .server)
            }
        }
        try await Task.sleep(for: .milliseconds(2_300))  // past the second release of a call that got no answer
        let jo = try await counter(book, .user("jo"), .day)
        XCTAssertEqual(jo?.reserved, Int128(dollars(1 + 3 * 2).picodollars))
        let holds = try await book.openHolds(on: loop).get()
        XCTAssertEqual(holds, 4)
    }

    /// `tokenctl_quota_reserve`, which replicas of earlier versions call for one call, answers as
    /// a batch of one does: admitted within the budget (one row per budget), refused past it.
    func testOneCallReservationOfEarlierReplicasReservesAsABatchOfOne() async throws {
        let book = try await makeBook(replica: "earlier-reserve")
        let connection = try await connect()
        let start = CalendarPeriod(timeZone: utc).interval(of: .day, containing: now)
        func reserve(_ id: String) async throws -> [String?] {
            let rows = try await connection.query("""
                SELECT o_ord, o_refused FROM tokenctl_quota_reserve(\(id), 'old', ARRAY['user:lee', 'org'],
                    ARRAY['day', 'day'], ARRAY[\(start.start), \(start.start)]::int8[], ARRAY[\(start.end), \(start.end)]::int8[],
                    ARRAY[\(dollars(5).picodollars), -1]::int8[], ARRAY[-1, -1]::int8[], \(dollars(3).picodollars)::int8, 10::int8,
                    600::int8)
                """, logger: logger).collect()
            XCTAssertEqual(try rows.map { try $0.decode((Int, String?).self).0 }, [1, 2])
            return try rows.map { try $0.decode((Int, String?).self).1 }
        }
        let first = try await reserve("o-1")
        let second = try await reserve("o-2")
        try await connection.close()
        XCTAssertEqual(first, [nil, nil])
        XCTAssertEqual(second, ["usd", nil])
        let lee = try await counter(book, .user("lee"), .day)
        XCTAssertEqual(lee, SharedQuotaCounter(spent: 0, reserved: Int128(dollars(3).picodollars), spentTokens: 0,
                                               reservedTokens: 10))
    }

    /// `tokenctl_quota_settle`, which replicas of earlier versions call for one call, settles as a
    /// batch of one does: once, the hold becoming the spend.
    func testOneCallSettlementOfEarlierReplicasSettlesOnce() async throws {
        let book = try await book(replica: "earlier", holdingOneCall: "e-1", of: "cy")
        let connection = try await connect()
        func settleOne() async throws -> Bool {
            let rows = try await connection.query("SELECT tokenctl_quota_settle('e-1', \(dollars(4).picodollars)::int8, 40)",
                                                  logger: logger).collect()
            return try rows[0].decode(Bool.self)
        }
        let first = try await settleOne()
        let second = try await settleOne()
        try await connection.close()
        XCTAssertTrue(first)
        XCTAssertFalse(second)
        let cy = try await counter(book, .user("cy"), .day)
        XCTAssertEqual(cy, SharedQuotaCounter(spent: Int128(dollars(4).picodollars), reserved: 0, spentTokens: 40,
                                              reservedTokens: 0))
    }

    // MARK: (c) a replica that stops

    /// Replica A reserves two calls and stops heartbeating; one call's ledger row committed.
    /// Replica B's reaper releases both holds within `replicaTimeout + reapInterval` of A's last
    /// heartbeat and charges the committed call its ledger cost. A late settle of the other call
    /// (A was slow, not dead) is charged once; of the committed one, not again.
    func testReaperReleasesADeadReplicasHoldsWithinTheBoundAndChargesFromTheLedger() async throws {
        let fast = SharedQuotaSettings(replicaTimeout: .seconds(1), heartbeatInterval: .milliseconds(200),
                                       reapInterval: .milliseconds(500))
        let dying = try await makeBook(replica: "dying", settings: fast)  // heartbeats once (prepare), never again
        let lastHeartbeat = ContinuousClock.now
        let loop = group.next()
        let budgets = [BudgetLimit(scope: .user("cat"), period: .month, usd: dollars(100))]
        for id in ["c-committed", "c-slow"] {
            _ = try await dying.reserve(callID: id, budgets: budgets, cost: dollars(30), tokens: 500, now: now,
                                        timeZone: utc, on: loop).get().get()
        }
        try await ledgerRow(id: "c-committed", startedAt: now, user: "cat", team: nil, cost: dollars(12).picodollars,
                            tokens: 321)
        let survivor = try await makeBook(replica: "survivor", settings: fast)
        let reaper = QuotaReaper(book: survivor, on: group.next())
        reapers.append(reaper)
        reaper.start()

        var held = try await survivor.openHolds(replica: "dying", on: loop).get()
        while held > 0, ContinuousClock.now - lastHeartbeat < .seconds(10) {
            try await Task.sleep(for: .milliseconds(20))
            held = try await survivor.openHolds(replica: "dying", on: loop).get()
        }
        let released = ContinuousClock.now - lastHeartbeat
        XCTAssertEqual(held, 0)
        // The bound, plus the time a reaper run and this poll take.
        XCTAssertLessThanOrEqual(released, fast.releaseBound + .milliseconds(300), "released after \(released)")
        print("shared quota: dead replica's holds released \(released) after its last heartbeat (bound \(fast.releaseBound))")
        var cat = try await counter(survivor, .user("cat"), .month)
        XCTAssertEqual(cat, SharedQuotaCounter(spent: Int128(dollars(12).picodollars), reserved: 0, spentTokens: 321,
                                               reservedTokens: 0))

        // A was only slow: its late settlements are charged exactly once.
        let lateSlow = try await dying.settle(callID: "c-slow", cost: dollars(5), tokens: 50, on: loop).get()
        XCTAssertTrue(lateSlow)
        let lateCommitted = try await dying.settle(callID: "c-committed", cost: dollars(12), tokens: 321, on: loop).get()
        XCTAssertFalse(lateCommitted, "already charged from its ledger row")
        let twice = try await dying.settle(callID: "c-slow", cost: dollars(5), tokens: 50, on: loop).get()
        XCTAssertFalse(twice)
        cat = try await counter(survivor, .user("cat"), .month)
        XCTAssertEqual(cat, SharedQuotaCounter(spent: Int128(dollars(17).picodollars), reserved: 0, spentTokens: 371,
                                               reservedTokens: 0))
        // The survivor heartbeats: its own holds stay.
        _ = try await survivor.reserve(callID: "c-alive", budgets: budgets, cost: dollars(1), tokens: 1, now: now,
                                       timeZone: utc, on: loop).get().get()
        try await Task.sleep(for: .milliseconds(1_800))
        let alive = try await survivor.openHolds(replica: "survivor", on: loop).get()
        XCTAssertEqual(alive, 1)
    }

    /// A reaper takes a slow replica's hold while that replica settles the call: the settlement
    /// waits for the reaper's transaction, then charges the call from the reaper's record, once
    /// (not zero times: the record is committed after the settlement began).
    func testSettlementThatWaitsForTheReaperChargesTheCallOnce() async throws {
        let book = try await book(replica: "slow", holdingOneCall: "s-1", of: "sl")
        let loop = group.next()
        let reaper = try await connect()
        try await reaper.query("BEGIN", logger: logger)
        // Not seen for 0 µs: every replica counts as gone.
        let reaped = try await reaper.query("SELECT o_reaped FROM tokenctl_quota_reap(0)", logger: logger).collect()
        XCTAssertEqual(try reaped[0].decode(Int.self), 1)
        let settling = book.settle(callID: "s-1", cost: dollars(4), tokens: 40, on: loop)
        // The reaper commits only once the settlement waits for the hold it took (seen from a
        // third connection: the reaper's own sees the activity as its transaction began).
        let observer = try await connect()
        var waiting = 0
        for _ in 0..<500 where waiting == 0 {
            let rows = try await observer.query("""
                SELECT count(*)::int8 FROM pg_stat_activity
                WHERE wait_event_type = 'Lock' AND query LIKE '%tokenctl_quota_settle_many%'
                """, logger: logger).collect()
            waiting = try rows[0].decode(Int.self)
            if waiting == 0 { try await Task.sleep(for: .milliseconds(10)) }
        }
        try await observer.close()
        XCTAssertEqual(waiting, 1, "the settlement never waited for the reaper's lock")
        try await reaper.query("COMMIT", logger: logger)
        let settled = try await settling.get()
        let again = try await book.settle(callID: "s-1", cost: dollars(4), tokens: 40, on: loop).get()
        try await reaper.close()
        XCTAssertTrue(settled)
        XCTAssertFalse(again)
        let user = try await counter(book, .user("sl"), .day)
        XCTAssertEqual(user, SharedQuotaCounter(spent: Int128(dollars(4).picodollars), reserved: 0, spentTokens: 40,
                                                reservedTokens: 0))
    }

    // MARK: (d) counters start from the ledger

    func testCounterCreatedMidPeriodStartsFromTheLedgerSum() async throws {
        let book = try await makeBook(replica: "late")
        let day = CalendarPeriod(timeZone: utc).interval(of: .day, containing: now)
        try await ledgerRow(id: "d-1", startedAt: day.start + 1, user: "dan", team: "web", cost: dollars(300).picodollars, tokens: 1_000)
        try await ledgerRow(id: "d-2", startedAt: now - 1, user: "dan", team: "web", cost: dollars(200).picodollars, tokens: 500)
        try await ledgerRow(id: "d-3", startedAt: now - 2, user: "dan", team: "web", cost: dollars(999).picodollars, tokens: 9,
                            outcome: "refused_quota")
        try await ledgerRow(id: "d-4", startedAt: day.start - 1, user: "dan", team: "web", cost: dollars(777).picodollars, tokens: 7)
        try await ledgerRow(id: "d-5", startedAt: now, user: "eve", team: "web", cost: dollars(40).picodollars, tokens: 4)
        try await ledgerRow(id: "d-6", startedAt: now, user: "fay", team: nil, cost: dollars(1).picodollars, tokens: 1)
        let budgets = [BudgetLimit(scope: .user("dan"), period: .day, usd: dollars(600)),
                       BudgetLimit(scope: .team("web"), period: .day, usd: dollars(10_000)),
                       BudgetLimit(scope: .org, period: .day, tokens: 1_000_000)]
        let refused = try await book.reserve(callID: "d-new", budgets: budgets, cost: dollars(150), tokens: 10, now: now,
                                             timeZone: utc, on: group.next()).get()
        guard case .failure(let refusal) = refused else { return XCTFail("expected a refusal, got \(refused)") }
        XCTAssertEqual(refusal.spent, dollars(500), "today's ledger rows of dan, refusals and yesterday left out")
        let dan = try await counter(book, .user("dan"), .day)
        XCTAssertEqual(dan, SharedQuotaCounter(spent: Int128(dollars(500).picodollars), reserved: 0, spentTokens: 1_500,
                                               reservedTokens: 0))
        let web = try await counter(book, .team("web"), .day)
        XCTAssertEqual(web?.spent, Int128(dollars(540).picodollars))
        let org = try await counter(book, .org, .day)
        XCTAssertEqual(org?.spentTokens, 1_505)
        // Within budget it is admitted, and what was left is what the headers show.
        let admitted = try await book.reserve(callID: "d-ok", budgets: budgets, cost: dollars(100), tokens: 10, now: now,
                                              timeZone: utc, on: group.next()).get().get()
        XCTAssertEqual(admitted.standings.first?.usdLeft, dollars(100))
    }

    // MARK: cost of a round trip

    /// What the shared state adds to a call: one reservation and one settlement, each a round
    /// trip (sequential, one loop, loopback server; printed for the benchmark note).
    func testReserveAndSettleRoundTrips() async throws {
        let book = try await makeBook(replica: "timed")
        let loop = group.next()
        let budgets = [BudgetLimit(scope: .user("tim"), period: .day, usd: dollars(1_000_000)),
                       BudgetLimit(scope: .team("t"), period: .week, usd: dollars(1_000_000)),
                       BudgetLimit(scope: .org, period: .month, usd: dollars(1_000_000))]
        _ = try await book.reserve(callID: "warm", budgets: budgets, cost: dollars(1), tokens: 1, now: now,
                                   timeZone: utc, on: loop).get().get()
        let count = 500
        var reserving = Duration.zero, settling = Duration.zero
        for index in 0..<count {
            let start = ContinuousClock.now
            _ = try await book.reserve(callID: "t-\(index)", budgets: budgets, cost: dollars(1), tokens: 10, now: now,
                                       timeZone: utc, on: loop).get().get()
            let reserved = ContinuousClock.now
            let settled = try await book.settle(callID: "t-\(index)", cost: dollars(1), tokens: 10, on: loop).get()
            XCTAssertTrue(settled)
            reserving += reserved - start
            settling += ContinuousClock.now - reserved
        }
        print("shared quota: \(count) sequential calls, 3 budgets: reserve \(reserving / count) mean, settle \(settling / count) mean")
        let user = try await counter(book, .user("tim"), .day)
        XCTAssertEqual(user?.spent, Int128(dollars(1).picodollars) * Int128(count))
    }

    /// A hold expires after `holdExpiry`, or after its call's longest life if that is longer (a
    /// provider whose `timeout_ms` is hours): a live replica's long call keeps its hold.
    func testHoldOfALongCallOutlivesTheHoldExpiry() async throws {
        let book = try await makeBook(replica: "long", settings: SharedQuotaSettings(holdExpiry: .seconds(60)))
        let budgets = [BudgetLimit(scope: .user("lena"), period: .day, usd: dollars(1_000))]
        _ = try await book.reserve(callID: "short", budgets: budgets, cost: dollars(1), tokens: 1, now: now,
                                   timeZone: utc, on: group.next()).get().get()
        _ = try await book.reserve(callID: "long", budgets: budgets, cost: dollars(1), tokens: 1, now: now,
                                   holdAtLeast: 3 * 3_600_000_000, timeZone: utc, on: group.next()).get().get()
        let connection = try await connect()
        let rows = try await connection.query("""
            SELECT call_id, extract(epoch FROM expires_at - reserved_at)::int8 FROM quota_holds ORDER BY call_id
            """, logger: logger)
        var lifetimes: [String: Int64] = [:]
        for try await (call, seconds) in rows.decode((String, Int64).self) { lifetimes[call] = seconds }
        try await connection.close()
        XCTAssertEqual(lifetimes["short"], 60)
        XCTAssertEqual(lifetimes["long"], 3 * 3_600 + 1)
    }

    /// Settling reads a call's hold by its key, however many dead rows `quota_holds` carries
    /// (a row goes in and out per call; autovacuum comes a minute apart): here, on a connection
    /// whose plans were made while the table was small, after 20,000 holds came and went,
    /// settling one call reads a handful of the table's pages, not all of them.
    func testSettlingReadsTheHoldByItsKeyNotPastTheDeadRows() async throws {
        _ = try await makeBook(replica: "churn")
        let connection = try await connect()
        func hold(_ id: String) async throws {
            try await connection.query("""
                INSERT INTO quota_holds (call_id, replica, scopes, periods, period_starts, cost, tokens, expires_at)
                VALUES (\(id), 'churn', '{"user:u"}', '{day}', '{0}', 1, 1, now() + interval '1 hour')
                """, logger: logger)
        }
        func settle(_ id: String) async throws -> [String] {
            try await connection.query("SELECT o_call_id FROM tokenctl_quota_settle_many(ARRAY[\(id)], '{1}', '{1}')",
                                       logger: logger).collect().map { try $0.decode(String.self) }
        }
        /// The table's pages read so far, this connection's latest statements included (their
        /// counts are sent when it next goes idle, at once only when asked to).
        func pagesRead() async throws -> Int64 {
            try await connection.query("SELECT pg_stat_force_next_flush()", logger: logger)
            let rows = try await connection.query("""
                SELECT coalesce(heap_blks_hit, 0) + coalesce(heap_blks_read, 0) FROM pg_statio_user_tables
                WHERE relid = 'quota_holds'::regclass
                """, logger: logger).collect()
            return try rows[0].decode(Int64.self)
        }
        // No autovacuum here: it would clear the dead rows for any plan.
        try await connection.query("ALTER TABLE quota_holds SET (autovacuum_enabled = off)", logger: logger)
        // More than the five runs after which PL/pgSQL may keep a generic plan.
        for index in 0..<8 {
            try await hold("warm-\(index)")
            let settled = try await settle("warm-\(index)")
            XCTAssertEqual(settled, ["warm-\(index)"])
        }
        try await connection.query("""
            INSERT INTO quota_holds (call_id, replica, scopes, periods, period_starts, cost, tokens, expires_at)
            SELECT 'gone-' || i, 'churn', '{"user:u"}', '{day}', '{0}', 1, 1, now() FROM generate_series(1, 20000) AS i
            """, logger: logger)
        try await connection.query("DELETE FROM quota_holds WHERE call_id LIKE 'gone-%'", logger: logger)
        try await hold("probe")
        let before = try await pagesRead()
        let settled = try await settle("probe")
        let read = try await pagesRead() - before
        try await connection.close()
        XCTAssertEqual(settled, ["probe"])
        XCTAssertLessThan(read, 10, "settling one call read \(read) pages of quota_holds")
    }

    // MARK: rolling deploys

    /// The installed functions' version, and a marker of the body of one of them.
    private func installedFunctions() async throws -> (version: Int64?, pruneBody: String) {
        let connection = try await connect()
        let version = try await connection.query("""
            SELECT value FROM quota_meta WHERE name = \(SharedQuotaSchema.functionsVersionName)
            """, logger: logger).collect().first?.decode(Int64.self)
        let body = try await connection.query("SELECT prosrc FROM pg_proc WHERE oid = 'tokenctl_quota_prune'::regproc",
                                              logger: logger).collect()[0].decode(String.self)
        try await connection.close()
        return (version, body)
    }

    /// Stands in for another tokenctl's install: `version` recorded, `tokenctl_quota_prune`'s
    /// body replaced by one saying so.
    private func installFunctions(ofVersion version: Int64) async throws {
        let connection = try await connect()
        try await connection.query("""
            CREATE OR REPLACE FUNCTION tokenctl_quota_prune(p_counters_before int8) RETURNS void LANGUAGE plpgsql
            AS $$ BEGIN /* version \(unescaped: String(version)) */ END $$
            """, logger: logger)
        try await connection.query("UPDATE quota_meta SET value = \(version) WHERE name = \(SharedQuotaSchema.functionsVersionName)",
                                   logger: logger)
        try await connection.close()
    }

    /// During a rolling deploy, a replica of an older tokenctl that (re)starts after a newer
    /// one installed its functions leaves them in place and calls them; the first install
    /// records its version.
    func testOlderReplicaLeavesNewerFunctionsInPlace() async throws {
        let ours = SharedQuotaSchema.functionsVersion
        _ = try await makeBook(replica: "first")
        let first = try await installedFunctions()
        XCTAssertEqual(first.version, ours)
        XCTAssertFalse(first.pruneBody.contains("version"))

        try await installFunctions(ofVersion: ours + 1)
        let book = try await makeBook(replica: "older")
        let after = try await installedFunctions()
        XCTAssertEqual(after.version, ours + 1)
        XCTAssertTrue(after.pruneBody.contains("version \(ours + 1)"), after.pruneBody)
        // The older replica still serves, on the functions it found.
        let budget = BudgetLimit(scope: .user("ola"), period: .day, usd: dollars(10))
        let admitted = try await book.reserve(callID: "older-1", budgets: [budget], cost: dollars(1), tokens: 1, now: now,
                                              timeZone: utc, on: group.next()).get()
        XCTAssertNoThrow(try admitted.get())
        let settled = try await book.settle(callID: "older-1", cost: dollars(1), tokens: 1, on: group.next()).get()
        XCTAssertTrue(settled)
    }

    /// A replica that finds functions of an older version (or of its own: reinstalling is
    /// harmless) replaces them and records its version.
    func testReplicaReplacesFunctionsOfAnOlderVersion() async throws {
        let ours = SharedQuotaSchema.functionsVersion
        _ = try await makeBook(replica: "first")
        for found in [ours - 1, ours] {
            try await installFunctions(ofVersion: found)
            _ = try await makeBook(replica: "newer-than-\(found)")
            let after = try await installedFunctions()
            XCTAssertEqual(after.version, ours)
            XCTAssertFalse(after.pruneBody.contains("version"), "found version \(found): \(after.pruneBody)")
        }
    }

    // MARK: lost answers

    /// A reservation whose answer is lost after it reached PostgreSQL (here: it waits behind a
    /// counter lock, its connection is closed at the deadline, and the function still runs once
    /// the lock is gone, after the immediate release found nothing) leaves a hold; the book
    /// releases it again once the server must have ended the statement, so the refused call
    /// holds nothing instead of stranding its budget until `holdExpiry`.
    func testHoldOfAReservationWhoseAnswerWasLostIsReleased() async throws {
        let book = try await makeBook(replica: "lost", settings: SharedQuotaSettings(answerTimeout: .seconds(1),
                                                                                     statementTimeout: .seconds(2)))
        let loop = group.next()
        let budgets = [BudgetLimit(scope: .user("lou"), period: .day, usd: dollars(1_000))]
        _ = try await book.reserve(callID: "warm", budgets: budgets, cost: dollars(1), tokens: 1, now: now,
                                   timeZone: utc, on: loop).get().get()
        _ = try await book.settle(callID: "warm", cost: dollars(1), tokens: 1, on: loop).get()
        let locker = try await connect()
        try await locker.query("BEGIN", logger: logger)
        try await locker.query("SELECT * FROM quota_counters FOR UPDATE", logger: logger)
        do {
            let result = try await book.reserve(callID: "lost-1", budgets: budgets, cost: dollars(2), tokens: 1, now: now,
                                                timeZone: utc, on: loop).get()
            XCTFail("expected no answer, got \(result)")
        } catch {
            // No answer in time, or the connection closed at its deadline: either way refused.
        }
        try await Task.sleep(for: .milliseconds(300))
        try await locker.query("COMMIT", logger: logger)
        try await locker.close()
        let start = ContinuousClock.now
        var open = try await book.openHolds(on: loop).get()
        for _ in 0..<80 where open > 0 {
            try await Task.sleep(for: .milliseconds(100))
            open = try await book.openHolds(on: loop).get()
        }
        print("lost answer: hold released \(ContinuousClock.now - start) after the lock")
        XCTAssertEqual(open, 0)
        let lou = try await counter(book, .user("lou"), .day)
        XCTAssertEqual(lou?.reserved, 0)
    }

    // MARK: no answer

    /// A server that accepts connections and never answers: the reservation fails after
    /// `answerTimeout` (admission then refuses, fail closed) instead of waiting for ever.
    func testReservationWithoutAnswerFailsAfterTheTimeout() async throws {
        let silent = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        var configuration = PostgresConnection.Configuration(host: "127.0.0.1", port: silent.localAddress?.port ?? 0,
                                                             username: "nobody", password: nil, database: "none",
                                                             tls: .disable)
        configuration.options.connectTimeout = .seconds(30)
        let book = SharedQuotaBook(configuration: configuration, replica: "unanswered",
                                   settings: SharedQuotaSettings(answerTimeout: .milliseconds(300)), logger: logger)
        books.append(book)
        let start = ContinuousClock.now
        do {
            let result = try await book.reserve(callID: "n-1", budgets: [BudgetLimit(scope: .org, period: .day, usd: dollars(1))],
                                                cost: dollars(0), tokens: 1, now: now, timeZone: utc, on: group.next()).get()
            XCTFail("expected no answer, got \(result)")
        } catch SharedQuotaError.noAnswer {
            let waited = ContinuousClock.now - start
            XCTAssertGreaterThanOrEqual(waited, .milliseconds(300))
            XCTAssertLessThan(waited, .seconds(2))
        }
    }
}


import Foundation
import Ledger
import LedgerTestSupport
import Metering
import Testing
@testable import Gateway

/// The in-flight markers' table gives back what a burst grew it to once the burst is over.
@Suite struct InFlightJournalTests {
    private func entry(_ i: Int) -> LedgerEntry {
        LedgerEntry(id: "call-\(i)", requestId: "req-\(i)", startedAt: 1, endedAt: 1, dialect: .openai,
                    route: "/v1/chat/completions", status: 0, outcome: .ok)
    }

    @Test func aBurstsTableIsGivenBackWhenItsCallsHaveEnded() throws {
        let dir = try TemporaryDirectory()
        defer { _ = dir }
        let journal = InFlightJournal(databasePath: dir.path())
        defer { journal.stop() }

        // A few at a time, as at steady load: the table keeps its room.
        for round in 0..<3 {
            for i in 0..<8 { journal.started(entry(round * 8 + i)) }
            for i in 0..<8 { journal.ended(id: "call-\(round * 8 + i)") }
        }
        let steady = journal.markerCapacity
        #expect(steady > 0)

        // A burst of 1,000: the room stays while any of its calls is in flight.
        for i in 0..<1_000 { journal.started(entry(1_000 + i)) }
        for i in 0..<999 { journal.ended(id: "call-\(1_000 + i)") }
        #expect(journal.markerCapacity >= 1_000)
        journal.ended(id: "call-1999")
        #expect(journal.markerCapacity == 0)
    }

    /// A killed gateway's markers of calls whose rows committed: a prune run before the next start
    /// must not leave them to find no row and record the calls again, as `interrupted`.
    @Test("ledger prune records what a stopped gateway left first: its markers do not bring pruned calls back")
    func markersAreRecordedBeforeAPrune() throws {
        let dir = try TemporaryDirectory()
        defer { _ = dir }
        let path = dir.path()
        let january = Day("2026-01-10")!.unixSeconds * UnixTime.microsPerSecond
        let calls = (1...4).map { i -> LedgerEntry in
            var call = entry(i)
            call.startedAt = january + Int64(i) * 1_000_000
            call.endedAt = call.startedAt + 500_000
            return call
        }
        let writer = try LedgerWriter(path: path)
        for call in calls { writer.append(call) { _ in } }
        writer.close()
        let journal = InFlightJournal(databasePath: path)
        for call in calls { journal.started(call) }
        journal.stop()  // killed before its markers of the recorded calls were cleared

        try StoppedGateway.recordWhatTheyLeft(sqlitePath: path)
        #expect(!InFlightJournal.hasMarkersLeft(databasePath: path))
        let february = Day("2026-02-01")!.unixSeconds * UnixTime.microsPerSecond
        _ = try LedgerPrune.prune(path: path, before: february, now: february + 40 * UnixTime.microsPerDay)
        let restarted = try LedgerWriter(path: path)
        #expect(InFlightJournal.recover(databasePath: path, into: restarted).rows == 0)
        restarted.close()
        let reader = try LedgerReader(path: path)
        defer { reader.close() }
        let totals = try reader.report(ReportQuery(since: 0, until: .max)).totals
        #expect(totals.requests == 4 && totals.errors == 0)
    }

    @Test("a call that ended but could not be recorded is recorded at the next start with its usage, not as interrupted")
    func aRowNotRecordedIsKeptForTheNextStart() throws {
        let dir = try TemporaryDirectory()
        defer { _ = dir }
        let path = dir.path()
        let journal = InFlightJournal(databasePath: path)
        journal.started(entry(1))
        journal.started(entry(2))
        var final = entry(1)
        final.usage = Usage(inputTokens: 12, outputTokens: 8)
        final.cost = Money(picodollars: 1_234)
        final.usageSource = .provider
        journal.notRecorded(final)
        journal.stop()  // as the gateway stops: both markers left, one with its row

        let writer = try LedgerWriter(path: path)
        let recovery = InFlightJournal.recover(databasePath: path, into: writer)
        #expect(recovery.rows == 2 && recovery.keptRows.map(\.id) == ["call-1"])
        writer.close()
        let reader = try LedgerReader(path: path)
        defer { reader.close() }
        var rows: [LedgerEntry] = []
        try reader.forEachEntry(since: 0, until: .max) { rows.append($0) }
        let kept = try #require(rows.first { $0.id == "call-1" })
        #expect(kept.outcome == .ok && kept.usage.outputTokens == 8 && kept.cost.picodollars == 1_234)
        #expect(kept.errorMessage?.contains("recorded at the next start") == true)
        #expect(rows.first { $0.id == "call-2" }?.outcome == .interrupted)
    }
}

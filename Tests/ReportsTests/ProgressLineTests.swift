import Foundation
import Reports
import Testing

@Suite("progress line")
struct ProgressLineTests {
    final class Clock: @unchecked Sendable {
        var now: TimeInterval = 100
        var lines: [String] = []
    }

    @Test("silent for quick work; past a second at most twice a second, then a final line")
    func paced() {
        let c = Clock()
        let quick = ProgressLine("exported", write: { c.lines.append($0) }, interactive: true, clock: { c.now })
        for n in 1...10_000 { quick.update(n) }
        c.now += 0.9
        quick.finish(10_000)
        #expect(c.lines.isEmpty)

        let slow = ProgressLine("replayed", write: { c.lines.append($0) }, interactive: true, clock: { c.now })
        slow.update(4_096)  // not a second yet
        c.now += 1.2
        slow.update(8_192)
        slow.update(12_288)  // under half a second since the last line
        c.now += 0.6
        slow.update(12_289)  // not on a 4096 boundary: the clock is not even read
        slow.update(16_384)
        slow.finish(17_000)
        #expect(c.lines == ["\rreplayed 8192 rows", "\rreplayed 16384 rows", "\rreplayed 17000 rows\n"])
    }

    @Test("to a log or a pipe: no carriage-return updates, only the final line")
    func notATerminal() {
        let c = Clock()
        let logged = ProgressLine("exported", write: { c.lines.append($0) }, interactive: false, clock: { c.now })
        c.now += 1.2
        logged.update(4_096)
        c.now += 0.6
        logged.update(8_192)
        logged.finish(9_000)
        #expect(c.lines == ["exported 9000 rows\n"])
    }
}

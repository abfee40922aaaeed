import Metering
import Testing
@testable import Ledger
import LedgerTestSupport

/// `LedgerEntry` shares its fields between copies until one changes (copy on write): each copy
/// must still behave as a value of its own.
@Suite struct LedgerEntryTests {
    @Test func aChangedCopyLeavesTheOriginalAsItWas() {
        let original = sampleEntry(1)
        var copy = original
        #expect(copy == original)
        copy.user = "someone-else"
        copy.usage.outputTokens += 7
        copy.appendNote("retried")
        #expect(original.user == sampleEntry(1).user)
        #expect(original.usage == sampleEntry(1).usage)
        #expect(original.errorMessage == sampleEntry(1).errorMessage)
        #expect(copy.user == "someone-else")
        #expect(copy.usage.outputTokens == original.usage.outputTokens + 7)
        #expect(copy != original)
    }

    @Test func entriesWithEqualFieldsAreEqualAndHashAlike() {
        // Made apart, so each has a box of its own.
        let a = sampleEntry(2), b = sampleEntry(2)
        #expect(a == b)
        #expect(Set([a, b]).count == 1)
        var c = b
        c.status = 599
        #expect(Set([a, b, c]).count == 2)
    }

    @Test func aCopyChangedOnAnotherThreadLeavesTheOriginalAsItWas() async {
        let original = sampleEntry(3)
        let changed = await Task.detached {
            var copy = original
            copy.route = "elsewhere"
            return copy
        }.value
        #expect(original.route == sampleEntry(3).route)
        #expect(changed.route == "elsewhere")
    }
}

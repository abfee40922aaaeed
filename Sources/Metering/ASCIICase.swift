extension Sequence<UInt8> {
    /// Whether these bytes begin with those of `lowercase`, ASCII letters compared without case;
    /// `lowercase` must be lower-case. A byte scan over views in place: header names and values
    /// are read on every call (lowercasing a copy, or Foundation, cost more than the compare).
    @inlinable
    package func starts(withIgnoringASCIICase lowercase: String.UTF8View) -> Bool {
        var bytes = makeIterator()
        for expected in lowercase {
            guard let byte = bytes.next() else { return false }
            // `byte &- "A" < 26`: an upper-case letter, lowered by its 0x20 bit.
            guard (byte &- 0x41 < 26 ? byte | 0x20 : byte) == expected else { return false }
        }
        return true
    }
}

extension Collection<UInt8> {
    /// Whether these bytes are those of `lowercase`, ASCII letters compared without case;
    /// `lowercase` must be lower-case.
    @inlinable
    package func equals(ignoringASCIICase lowercase: String.UTF8View) -> Bool {
        count == lowercase.count && starts(withIgnoringASCIICase: lowercase)
    }
}

/// A fixed set of header names, matched without ASCII case in place: neither a lowercased copy
/// nor a hash of it (a `Set<String>` lookup of `name.lowercased()` for every header of every
/// call cost about 1 % of the event loop). Sets are small; a name of another length is passed
/// over at its length (`equals(ignoringASCIICase:)` compares counts first).
package struct HeaderNameSet: Sendable {
    private let names: [String]

    /// `names` in lower case.
    package init(_ names: [String]) {
        precondition(names.allSatisfy { $0 == $0.lowercased() }, "header names are given in lower case")
        self.names = names
    }

    package func contains(_ name: String) -> Bool {
        names.contains { name.utf8.equals(ignoringASCIICase: $0.utf8) }
    }
}

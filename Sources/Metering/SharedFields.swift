/// A value type's fields kept in one box that its copies share until one of them changes a field
/// (copy on write, as `Array` does). For the large values every call hands from stage to stage
/// (a ledger row, a price): copied plainly, each hand-off retains and releases every string they
/// hold (`bench/profile.sh`, `AB_COUNTS=1 bench/ab.sh`); shared, one retain.
///
/// The owner declares a property per field: `get { shared.box.fields.user }` reads one field in
/// place, `set { shared.update { $0.user = newValue } }` copies the box first if another value
/// holds it. (Not a `_modify` accessor: a generic coroutine left unspecialised allocates its frame
/// on every call.)
package struct SharedFields<Fields: Sendable>: @unchecked Sendable {
    package final class Box {
        /// Changed only once no other value holds the box: no two accesses can overlap, so the
        /// runtime's exclusivity check (a cost on every read) is left out.
        @exclusivity(unchecked)
        package var fields: Fields

        @inlinable
        init(_ fields: Fields) { self.fields = fields }
    }

    /// Read fields through it; change them through `update`, which keeps copies apart. (Not
    /// `private(set)`: `update` is inlined into the owners' modules, which must see the setter.)
    package var box: Box

    @inlinable
    package init(_ fields: Fields) { box = Box(fields) }

    /// Runs `change` on the fields, copied first into a box of their own if another value holds
    /// this one.
    @inlinable @inline(__always)
    package mutating func update(_ change: (inout Fields) -> Void) {
        if !isKnownUniquelyReferenced(&box) { box = Box(box.fields) }
        change(&box.fields)
    }
}

extension SharedFields: Equatable where Fields: Equatable {
    @inlinable
    package static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.box === rhs.box || lhs.box.fields == rhs.box.fields
    }
}

extension SharedFields: Hashable where Fields: Hashable {
    @inlinable
    package func hash(into hasher: inout Hasher) { box.fields.hash(into: &hasher) }
}

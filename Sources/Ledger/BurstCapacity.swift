extension Array {
    /// Empties the array, keeping its storage for the next use only while it holds no more than
    /// `limit` elements: steady load reuses it without reallocating, and the room a burst grew it
    /// to (a thousand rows of a few hundred bytes each) is given back once the burst has passed.
    package mutating func removeAll(keepingCapacityUpTo limit: Int) {
        removeAll(keepingCapacity: capacity <= limit)
    }
}

/// Rows whose buffers a writer keeps between batches (`removeAll(keepingCapacityUpTo:)`).
package let keptBatchRows = 256

extension Array {
    /// Empties the array for its next use. Its storage is kept unless it is over four times what
    /// this use needed and over `floor` elements: a steady load reuses it without reallocating
    /// (batches of about the same size), and the room a burst grew it to (a thousand rows of a
    /// few hundred bytes each) goes at the first use well below it.
    package mutating func removeAll(keepingRoomAbove floor: Int) {
        removeAll(keepingCapacity: capacity <= Swift.max(floor, 4 * count))
    }
}

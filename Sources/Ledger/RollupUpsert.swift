import CSQLite

/// Adding a delta to a rollup cell in one statement: INSERT the delta, or on conflict add it to
/// the stored cell in place. The writer then never reads a cell back nor keeps cells in memory
/// to avoid that (a cache of cells cost more per cell than SQLite's own B-tree seek), and a cell
/// is written whatever another connection wrote to it before.
///
/// The sums SQL cannot do exactly are SQL functions registered on the connection: Int128 money
/// as (low, high) 64-bit halves (SQLite turns an overflowing `+` into a REAL) and histogram blobs.
enum RollupUpsert {
    static func sql(table: String, spanColumn: String, columns: [String]) -> String {
        let sums = columns.map { column -> String in
            switch column {
            case "cost_pd", "retry_cost_pd":
                return "\(column) = rollup_sum_low(\(column), excluded.\(column))"
            case "cost_pd_high", "retry_cost_pd_high":
                let low = column.replacingOccurrences(of: "_high", with: "")
                return "\(column) = rollup_sum_high(\(low), \(column), excluded.\(low), excluded.\(column))"
            case "latency_hist", "ttft_hist":
                return "\(column) = rollup_histogram_sum(\(column), excluded.\(column))"
            case "quarters", "quarters_high":
                return "\(column) = \(column) | excluded.\(column)"
            default:
                return "\(column) = \(column) + excluded.\(column)"
            }
        }
        return """
            INSERT INTO \(table) (\(spanColumn), key, \(columns.joined(separator: ", ")))
            VALUES (?1, ?2, \((3...columns.count + 2).map { "?\($0)" }.joined(separator: ", ")))
            ON CONFLICT (\(spanColumn), key) DO UPDATE SET \(sums.joined(separator: ", "))
            """
    }

    /// Registers the functions `sql` uses (per connection; registering again replaces them).
    static func registerFunctions(on connection: SQLiteConnection) throws {
        let flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS
        for (name, arguments, function) in [("rollup_sum_low", Int32(2), sumLow), ("rollup_sum_high", 4, sumHigh),
                                            ("rollup_histogram_sum", 2, histogramSum)] {
            let rc = sqlite3_create_function_v2(connection.handle, name, arguments, flags, nil, function, nil, nil, nil)
            guard rc == SQLITE_OK else { throw connection.error(rc, "register SQL function \(name)") }
        }
    }
}

private typealias SQLFunction = @convention(c) (OpaquePointer?, Int32, UnsafeMutablePointer<OpaquePointer?>?) -> Void

/// rollup_sum_low(a_low, b_low): the low 64 bits of the sum (a wrapping add).
private let sumLow: SQLFunction = { context, _, arguments in
    guard let arguments else { return }
    sqlite3_result_int64(context, sqlite3_value_int64(arguments[0]) &+ sqlite3_value_int64(arguments[1]))
}

/// rollup_sum_high(a_low, a_high, b_low, b_high): the high 64 bits of the Int128 sum.
private let sumHigh: SQLFunction = { context, _, arguments in
    guard let arguments else { return }
    let sum = Int128(storedLow: sqlite3_value_int64(arguments[0]), high: sqlite3_value_int64(arguments[1]))
        + Int128(storedLow: sqlite3_value_int64(arguments[2]), high: sqlite3_value_int64(arguments[3]))
    sqlite3_result_int64(context, sum.storedParts.high)
}

/// rollup_histogram_sum(a, b): the sum of two `SparseHistogram` blobs.
private let histogramSum: SQLFunction = { context, _, arguments in
    guard let arguments else { return }
    func histogram(_ value: OpaquePointer?) -> SparseHistogram {
        let bytes = sqlite3_value_blob(value)
        return SparseHistogram(decoding: UnsafeRawBufferPointer(start: bytes, count: bytes == nil ? 0 : Int(sqlite3_value_bytes(value))))
    }
    let encoded = histogram(arguments[0]).merged(with: histogram(arguments[1])).encoded()
    // A NOT NULL column: an empty histogram is a zero-length blob, not NULL.
    guard !encoded.isEmpty else { return sqlite3_result_zeroblob(context, 0) }
    encoded.withUnsafeBytes { raw in
        sqlite3_result_blob(context, raw.baseAddress, Int32(raw.count), sqliteTransient)
    }
}

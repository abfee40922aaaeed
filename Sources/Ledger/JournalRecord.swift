import Metering

/// A `LedgerEntry` as one record of the ledger's journal (`LedgerJournal`): a compact binary
/// form, quick to write on an event loop and to read back at a restart.
///
/// A record is `[payload length: u32 LE][FNV-1a of the payload: u32 LE][payload]`. A process
/// kill never tears a `write`, but a power cut can leave a record cut short or a page of zeros:
/// reading stops at the first record whose length runs past the end or whose checksum is wrong.
///
/// The payload holds every field in a fixed order: integers as zigzag varints, text as a varint
/// length and UTF-8, an absent optional as a 0 byte (present: 1, then the value). Its first byte
/// is the format's version: 2 adds, at the end, the 1-hour cache writes and their price; 3 then
/// the web searches and their fee; 4 then the audio tokens and their prices; 5 then the file
/// searches and their fee. A row is written in the lowest format that holds it (none of those, at
/// their default prices: format 1), which earlier builds read (a rollback keeps what a killed
/// gateway left), and read back the same.
public enum JournalRecord {
    static let version: UInt8 = 5
    static let headerBytes = 8

    /// Appends `entry`'s record to `bytes`.
    public static func append(_ entry: LedgerEntry, to bytes: inout [UInt8]) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: headerBytes))
        let hourWrites = entry.usage.cacheWrite1hTokens != 0
            || entry.price.map { $0.cacheWrite1h != ModelPrice.anthropicHourWrite(input: $0.input) } == true
        let searches = entry.usage.webSearches != 0
            || entry.price.map { $0.webSearch != ModelPrice.defaultWebSearch } == true
        let audio = entry.usage.audioInputTokens != 0 || entry.usage.audioOutputTokens != 0
            || entry.price.map { $0.audioInput != nil || $0.audioOutput != nil } == true
        let files = entry.usage.fileSearches != 0
            || entry.price.map { $0.fileSearch != ModelPrice.defaultFileSearch } == true
        let format: UInt8 = files ? 5 : audio ? 4 : searches ? 3 : hourWrites ? 2 : 1
        bytes.append(format)
        bytes.appendText(entry.id)
        bytes.appendText(entry.requestId)
        bytes.appendInt(entry.startedAt)
        bytes.appendInt(entry.firstByteAt)
        bytes.appendInt(entry.endedAt)
        bytes.appendText(entry.keyId)
        bytes.appendText(entry.user)
        bytes.appendText(entry.team)
        bytes.appendText(entry.dialect.rawValue)
        bytes.appendText(entry.route)
        bytes.appendText(entry.provider)
        bytes.appendText(entry.modelRequested)
        bytes.appendText(entry.modelServed)
        bytes.append(entry.stream ? 1 : 0)
        bytes.appendInt(Int64(entry.status))
        bytes.appendText(entry.outcome.rawValue)
        bytes.appendInt(Int64(entry.usage.inputTokens))
        bytes.appendInt(Int64(entry.usage.cachedInputTokens))
        bytes.appendInt(Int64(entry.usage.cacheWriteTokens))
        bytes.appendInt(Int64(entry.usage.outputTokens))
        bytes.appendInt(Int64(entry.usage.reasoningTokens))
        bytes.appendText(entry.usageSource.rawValue)
        bytes.appendInt(entry.cost.picodollars)
        if let price = entry.price {
            bytes.append(1)
            bytes.appendText(price.id)
            bytes.appendInt(price.input.picodollars)
            bytes.appendInt(price.cachedInput.picodollars)
            bytes.appendInt(price.cacheWrite.picodollars)
            bytes.appendInt(price.output.picodollars)
        } else {
            bytes.append(0)
        }
        bytes.appendInt(entry.ttftMicros)
        bytes.appendInt(entry.upstreamMicros)
        bytes.appendText(entry.errorMessage)
        bytes.appendText(entry.plan)
        bytes.appendInt(entry.outputCapRequested.map(Int64.init))
        bytes.appendInt(entry.outputCapApplied.map(Int64.init))
        bytes.appendInt(entry.requestHash)
        // Each format holds the fields of those before it.
        if format >= 2 {
            bytes.appendInt(Int64(entry.usage.cacheWrite1hTokens))
            bytes.appendInt(entry.price?.cacheWrite1h.picodollars)
        }
        if format >= 3 {
            bytes.appendInt(Int64(entry.usage.webSearches))
            bytes.appendInt(entry.price?.webSearch.picodollars)
        }
        if format >= 4 {
            bytes.appendInt(Int64(entry.usage.audioInputTokens))
            bytes.appendInt(Int64(entry.usage.audioOutputTokens))
            bytes.appendInt(entry.price?.audioInput?.picodollars)
            bytes.appendInt(entry.price?.audioOutput?.picodollars)
        }
        if format >= 5 {
            bytes.appendInt(Int64(entry.usage.fileSearches))
            bytes.appendInt(entry.price?.fileSearch.picodollars)
        }
        let payload = bytes.count - start - headerBytes
        let sum = bytes.withUnsafeBufferPointer { checksum(UnsafeBufferPointer(rebasing: $0[(start + headerBytes)...])) }
        store(UInt32(payload), at: start, in: &bytes)
        store(sum, at: start + 4, in: &bytes)
    }

    /// The entries of the whole records at the start of `bytes`; how many bytes those records
    /// take (less than `bytes.count` when the rest is cut short or damaged); and how many whole
    /// records among them this build cannot read (a newer format, an outcome it does not know),
    /// which are skipped.
    public static func read(_ bytes: UnsafeRawBufferPointer) -> (entries: [LedgerEntry], validBytes: Int, unreadable: Int) {
        var entries: [LedgerEntry] = []
        var offset = 0
        var unreadable = 0
        while bytes.count - offset >= headerBytes {
            let length = Int(load(bytes, at: offset))
            let sum = load(bytes, at: offset + 4)
            let start = offset + headerBytes
            guard length > 0, length <= bytes.count - start else { break }
            let payload = UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)])
            guard checksum(payload.assumingMemoryBound(to: UInt8.self)) == sum else { break }
            if let entry = decode(payload) { entries.append(entry) } else { unreadable += 1 }
            offset = start + length
        }
        return (entries, offset, unreadable)
    }

    private static func decode(_ payload: UnsafeRawBufferPointer) -> LedgerEntry? {
        var r = Reader(bytes: payload)
        guard let format = r.byte(), (1...version).contains(format) else { return nil }
        guard let id = r.text(), let requestId = r.text(), let startedAt = r.int(),
              let firstByteAt = r.optionalInt(), let endedAt = r.int(),
              let keyId = r.optionalText(), let user = r.optionalText(), let team = r.optionalText(),
              let dialect = r.text().flatMap(Dialect.init(rawValue:)), let route = r.text(),
              let provider = r.optionalText(), let modelRequested = r.optionalText(),
              let modelServed = r.optionalText(), let stream = r.byte(), stream <= 1, let status = r.int(),
              let outcome = r.text().flatMap(Outcome.init(rawValue:)),
              let input = r.int(), let cachedInput = r.int(), let cacheWrite = r.int(), let output = r.int(),
              let reasoning = r.int(), let usageSource = r.text().flatMap(UsageSource.init(rawValue:)),
              let cost = r.int(), let hasPrice = r.byte(), hasPrice <= 1 else { return nil }
        var stored: (id: String, input: Int64, cached: Int64, write: Int64, output: Int64)?
        if hasPrice == 1 {
            guard let priceId = r.text(), let pInput = r.int(), let pCached = r.int(), let pWrite = r.int(),
                  let pOutput = r.int() else { return nil }
            stored = (priceId, pInput, pCached, pWrite, pOutput)
        }
        guard let ttft = r.optionalInt(), let upstream = r.optionalInt(), let errorMessage = r.optionalText(),
              let plan = r.optionalText(), let capRequested = r.optionalInt(), let capApplied = r.optionalInt(),
              let requestHash = r.optionalInt() else { return nil }
        var hourWrites: Int64 = 0, hourWritePrice: Int64?
        if format >= 2 {
            guard let count = r.int(), let price = r.optionalInt() else { return nil }
            (hourWrites, hourWritePrice) = (count, price)
        }
        var searches: Int64 = 0, searchPrice: Int64?
        if format >= 3 {
            guard let count = r.int(), let price = r.optionalInt() else { return nil }
            (searches, searchPrice) = (count, price)
        }
        var audioIn: Int64 = 0, audioOut: Int64 = 0, audioInPrice: Int64?, audioOutPrice: Int64?
        if format >= 4 {
            guard let input = r.int(), let output = r.int(), let inPrice = r.optionalInt(),
                  let outPrice = r.optionalInt() else { return nil }
            (audioIn, audioOut, audioInPrice, audioOutPrice) = (input, output, inPrice, outPrice)
        }
        var fileSearches: Int64 = 0, fileSearchPrice: Int64?
        if format >= 5 {
            guard let count = r.int(), let price = r.optionalInt() else { return nil }
            (fileSearches, fileSearchPrice) = (count, price)
        }
        guard r.isAtEnd else { return nil }
        var price: ModelPrice?
        if let stored {
            guard let decoded = try? StoredPrice.decode(id: stored.id, input: stored.input, cachedInput: stored.cached,
                                                        cacheWrite: stored.write, cacheWrite1h: hourWritePrice,
                                                        output: stored.output, webSearch: searchPrice,
                                                        audioInput: audioInPrice, audioOutput: audioOutPrice,
                                                        fileSearch: fileSearchPrice, callId: id) else { return nil }
            price = decoded
        }
        return LedgerEntry(
            id: id, requestId: requestId, startedAt: startedAt, firstByteAt: firstByteAt, endedAt: endedAt,
            keyId: keyId, user: user, team: team, dialect: dialect, route: route, provider: provider,
            modelRequested: modelRequested, modelServed: modelServed, stream: stream == 1, status: Int(status),
            outcome: outcome,
            usage: Usage(inputTokens: Int(input), cachedInputTokens: Int(cachedInput),
                         cacheWriteTokens: Int(cacheWrite), cacheWrite1hTokens: Int(hourWrites), outputTokens: Int(output),
                         reasoningTokens: Int(reasoning), webSearches: Int(searches),
                         audioInputTokens: Int(audioIn), audioOutputTokens: Int(audioOut),
                         fileSearches: Int(fileSearches)),
            usageSource: usageSource, cost: Money(picodollars: cost), price: price,
            ttftMicros: ttft, upstreamMicros: upstream, errorMessage: errorMessage, plan: plan,
            outputCapRequested: capRequested.map { Int($0) }, outputCapApplied: capApplied.map { Int($0) },
            requestHash: requestHash)
    }

    /// FNV-1a, 32 bits: catches a torn or zeroed tail, which is all it is for.
    static func checksum(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in bytes { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return hash
    }

    private static func store(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

    private static func load(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        var isAtEnd: Bool { offset == bytes.count }

        mutating func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func int() -> Int64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while let byte = byte() {
                value |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { return Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1) }
                shift += 7
                if shift > 63 { return nil }
            }
            return nil
        }

        /// nil: malformed; .some(nil): absent.
        mutating func optionalInt() -> Int64?? {
            switch byte() {
            case 0: return .some(nil)
            case 1: return int().map { .some($0) }
            default: return nil
            }
        }

        mutating func text() -> String? {
            guard let length = int(), length >= 0, length <= bytes.count - offset else { return nil }
            defer { offset += Int(length) }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + Int(length))]),
                          as: UTF8.self)
        }

        mutating func optionalText() -> String?? {
            switch byte() {
            case 0: return .some(nil)
            case 1: return text().map { .some($0) }
            default: return nil
            }
        }
    }
}

/// The payload's encodings (see `JournalRecord`).
private extension [UInt8] {
    mutating func appendInt(_ value: Int64) {
        var zigzag = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        while zigzag >= 0x80 {
            append(UInt8(truncatingIfNeeded: zigzag) | 0x80)
            zigzag >>= 7
        }
        append(UInt8(zigzag))
    }

    mutating func appendInt(_ value: Int64?) {
        guard let value else { return append(0) }
        append(1)
        appendInt(value)
    }

    mutating func appendText(_ value: String) {
        appendInt(Int64(value.utf8.count))
        // In place: `withUTF8` on a copy cost a retain and a release per field of every row.
        if value.utf8.withContiguousStorageIfAvailable({ append(contentsOf: $0) }) == nil {
            append(contentsOf: value.utf8)
        }
    }

    mutating func appendText(_ value: String?) {
        guard let value else { return append(0) }
        append(1)
        appendText(value)
    }
}

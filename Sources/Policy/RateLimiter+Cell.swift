/// One GCRA meter (generic cell rate algorithm) for one limit of one key: a "per minute" rate
/// with a burst of the same size.
///
/// The whole state is the theoretical arrival time (TAT): the moment the meter would be full
/// again if nothing more were taken. Taking `n` units pushes the TAT `n · 60 s / rate` later;
/// a call is admitted when the pushed TAT is at most one minute ahead of now. So a fresh key
/// may take its whole per-minute amount at once, then earns one unit back every `60 s / rate`:
/// smooth, with no fixed window whose boundary would allow twice the amount in an instant.
///
/// The TAT is kept exactly: whole microseconds plus `fraction / rate` of one, so that rates
/// that do not divide a minute (7 per minute) neither drift nor lose a unit of the burst.
///
/// The cell keeps the rate it was charged at: a policy reload may change the limit, and a TAT
/// is a count of units only at its own rate (see `rescaled`).
struct GCRACell: Sendable, Hashable {
    /// The length of the window the rate is expressed in: one minute, in microseconds.
    static let period: Int64 = 60_000_000
    /// Rates above this (per minute) are treated as this: it keeps `units · period` in 64 bits,
    /// and 10^11 tokens a minute is unlimited in practice.
    static let maxRate: Int64 = 100_000_000_000
    /// How far settlement may push a meter into debt (beyond one full minute of use).
    static let maxDebt: Int64 = 86_400_000_000

    /// A meter that is full (TAT at or before every `now`). Its rate is never read: an idle
    /// meter restarts at the limit's rate (`rescaled`).
    static let full = GCRACell(micros: .min, fraction: 0, rate: 1)

    /// TAT = `micros` + `fraction / rate` µs, with `0 <= fraction < rate`.
    var micros: Int64
    var fraction: Int64
    /// The per-minute rate the TAT was charged at.
    var rate: Int64

    /// A limit as a usable rate, or nil when the limit blocks everything (0 or less).
    static func usableRate(_ perMinute: Int) -> Int64? {
        perMinute <= 0 ? nil : min(Int64(perMinute), maxRate)
    }

    /// What a call of `units` is charged: at most the whole burst, so a single call larger than
    /// the per-minute amount is admitted when the meter is full (and empties it) instead of never.
    static func charge(_ units: Int, rate: Int64) -> Int64 {
        units <= 0 ? 0 : min(Int64(units), rate)
    }

    /// Whether the TAT is after `now`, i.e. some of the burst is in use.
    func isBusy(at now: Int64) -> Bool {
        micros > now || (micros == now && fraction > 0)
    }

    /// This meter as one at `new` per minute that cannot be fuller than full (an idle meter
    /// restarts at `now`). A reload may have changed the limit: what was taken is counted at
    /// the new rate, so a raised limit lets a caller in debt in as far as it allows; lowered, at
    /// most a full minute of it (or the debt it had, if longer): old use does not become debt.
    func rescaled(to new: Int64, at now: Int64) -> GCRACell {
        guard isBusy(at: now) else { return GCRACell(micros: now, fraction: 0, rate: new) }
        if new == rate { return self }
        let lead = micros - now
        // lead · old = (micros − now) · old + fraction: up to a day's debt times `maxRate`.
        let scaled = Int128(lead) * Int128(rate) + Int128(fraction)
        let (newLead, newFraction) = scaled.quotientAndRemainder(dividingBy: Int128(new))
        let cap = max(lead, GCRACell.period)
        guard newLead < Int128(cap) else {
            let kept = lead == cap ? Int64(Int128(fraction) * Int128(new) / Int128(rate)) : 0
            return GCRACell(micros: now + cap, fraction: kept, rate: new)
        }
        return GCRACell(micros: now + Int64(newLead), fraction: Int64(newFraction), rate: new)
    }

    /// This TAT pushed `units · period / rate` later (`0 <= units <= maxRate`).
    func advanced(by units: Int64) -> GCRACell {
        let total = fraction + units * GCRACell.period
        return GCRACell(micros: micros + total / rate, fraction: total % rate, rate: rate)
    }

    /// Whether a meter with this TAT is within its burst at `now`: TAT − now ≤ period.
    func fits(at now: Int64) -> Bool {
        let lead = micros - now
        return lead < GCRACell.period || (lead == GCRACell.period && fraction == 0)
    }

    /// Microseconds from `now` until a meter with this (pushed) TAT fits: exact, rounded up.
    func wait(from now: Int64) -> Int64 {
        let late = micros - GCRACell.period - now
        if late < 0 { return 0 }
        return late + (fraction > 0 ? 1 : 0)
    }

    /// Units that could be taken at `now` (0 ... rate).
    func remaining(at now: Int64) -> Int64 {
        let room = now + GCRACell.period - max(micros, now)  // ≤ period; negative in debt
        if room <= 0 { return 0 }
        return max(0, min(rate, (room * rate - fraction) / GCRACell.period))
    }

    /// Microseconds from `now` until the meter is full again (rounded up).
    func untilFull(at now: Int64) -> Int64 {
        guard isBusy(at: now) else { return 0 }
        return micros - now + (fraction > 0 ? 1 : 0)
    }

    // MARK: Settlement

    // Settlement takes or gives back units at the meter's own rate, not at the admission's: a
    // call admitted before a reload that raised the limit, settled after it, would otherwise
    // count the meter back at the old rate and drop what was taken under the new one.

    /// `units` more taken at settlement, without a check: the call already ran. An idle meter
    /// starts at `idleRate`. The debt this may create delays later calls; it is capped at
    /// `maxDebt` past a full minute.
    func charged(extra units: Int64, idleRate: Int64, now: Int64) -> GCRACell {
        let start = isBusy(at: now) ? self : GCRACell(micros: now, fraction: 0, rate: idleRate)
        let pushed = start.advanced(by: min(units, GCRACell.maxRate))
        let ceiling = now + GCRACell.period + GCRACell.maxDebt
        return pushed.micros >= ceiling ? GCRACell(micros: ceiling, fraction: 0, rate: pushed.rate) : pushed
    }

    /// `units` given back at settlement; never fuller than full.
    func refunded(_ units: Int64, now: Int64) -> GCRACell {
        guard isBusy(at: now) else { return .full }
        let total = min(units, GCRACell.maxRate) * GCRACell.period
        var result = GCRACell(micros: micros - total / rate, fraction: fraction - total % rate, rate: rate)
        if result.fraction < 0 {
            result.fraction += rate
            result.micros -= 1
        }
        return result.isBusy(at: now) ? result : .full
    }
}

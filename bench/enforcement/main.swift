// Micro-benchmark of the enforcement types on the request path. Not a test: run with
// bench/enforcement/run.sh, which builds it in release mode in a scratch package.
import Foundation
import Metering
import Policy

let cycles = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 1_000_000
let runs = 7
let zone = TimeZone(identifier: "Europe/Berlin")!
let users = (0..<100).map { "user:u\($0)" }
let keys = (0..<100).map { "key:key_\(String($0, radix: 16))" }
let limits = RateLimits(requestsPerMinute: 1_000_000_000, tokensPerMinute: 100_000_000_000, maxConcurrent: 100)
let budgets = (0..<100).map { i in
    [BudgetLimit(scope: .user("u\(i)"), period: .day, usd: Money(dollars: "1000000")!),
     BudgetLimit(scope: .user("u\(i)"), period: .month, usd: Money(dollars: "1000000")!, tokens: 1 << 60),
     BudgetLimit(scope: .team("t\(i % 10)"), period: .month, usd: Money(dollars: "1000000")!),
     BudgetLimit(scope: .org, period: .month, usd: Money(dollars: "9000000")!)]
}
let single = budgets.map { [$0[1]] }
let start: Int64 = 1_780_000_000_000_000
let worst = Money(picodollars: 2_000_000_000)  // $0.002
let actual = Money(picodollars: 1_500_000_000)

/// Nanoseconds per iteration of `body` over `cycles` iterations, median of `runs` runs.
func measure(_ name: String, _ body: (Int) -> Void) {
    if let only = ProcessInfo.processInfo.environment["ONLY"], !name.contains(only) { return }
    var samples: [Double] = []
    for _ in 0..<runs {
        let clock = ContinuousClock()
        let elapsed = clock.measure { for i in 0..<cycles { body(i) } }
        let ns = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        samples.append(ns / Double(cycles))
    }
    samples.sort()
    print(name.padding(toLength: 56, withPad: " ", startingAt: 0)
          + String(format: "median %7.1f ns  (min %7.1f, max %7.1f)", samples[runs / 2], samples[0], samples[runs - 1]))
}

do {
    let limiter = RateLimiter()
    measure("RateLimiter.admit (1 key)") { i in
        _ = limiter.admit(users[i % 100], limits: limits, tokens: 1_200, now: start + Int64(i))
    }
    let pair = RateLimiter()
    measure("RateLimiter.admit (user + key, atomic)") { i in
        _ = pair.admit(users[i % 100], limits: limits, and: keys[i % 100], limits: limits, tokens: 1_200,
                       now: start + Int64(i))
    }
    measure("RateLimiter.correct") { i in
        limiter.correct(users[i % 100], limits: limits, estimatedTokens: 1_200, actualTokens: 700,
                        now: start + Int64(i))
    }
    let gate = ConcurrencyGate()
    measure("ConcurrencyGate.tryAcquire + release") { i in
        _ = gate.tryAcquire(users[i % 100], limit: 100)
        gate.release(users[i % 100])
    }
    let one = QuotaBook()
    measure("QuotaBook.reserve + settle (1 budget)") { i in
        let now = start + Int64(i)
        if case .success(let r) = one.reserve(budgets: single[i % 100], cost: worst, tokens: 1_200,
                                              now: now, timeZone: zone) {
            one.settle(r, cost: actual, tokens: 700, now: now)
        }
    }
    let book = QuotaBook()
    measure("QuotaBook.reserve + settle (4 budgets)") { i in
        let now = start + Int64(i)
        if case .success(let r) = book.reserve(budgets: budgets[i % 100], cost: worst, tokens: 1_200, now: now,
                                               timeZone: zone) {
            book.settle(r, cost: actual, tokens: 700, now: now)
        }
    }
    let breaker = SpendRateBreaker()
    let hourly = Money(dollars: "1000000")!
    measure("SpendRateBreaker.isTripped + record") { i in
        let now = start + Int64(i) * 1_000
        _ = breaker.isTripped(limitPerHour: hourly, now: now)
        breaker.record(cost: actual, now: now)
    }
    let cycleLimiter = RateLimiter(), cycleGate = ConcurrencyGate(), cycleBook = QuotaBook()
    let cycleBreaker = SpendRateBreaker()
    measure("full cycle: admit+gate+reserve+settle+correct+breaker") { i in
        let now = start + Int64(i)
        let user = users[i % 100]
        _ = cycleBreaker.isTripped(limitPerHour: nil, now: now)
        _ = cycleLimiter.admit(user, limits: limits, and: keys[i % 100], limits: limits, tokens: 1_200, now: now)
        _ = cycleGate.tryAcquire(user, limit: 100)
        if case .success(let r) = cycleBook.reserve(budgets: budgets[i % 100], cost: worst, tokens: 1_200, now: now,
                                                    timeZone: zone) {
            cycleBook.settle(r, cost: actual, tokens: 700, now: now)
        }
        cycleGate.release(user)
        cycleLimiter.correct(user, limits: limits, estimatedTokens: 1_200, actualTokens: 700, now: now)
        cycleBreaker.record(cost: actual, now: now)
    }
}

// Contention: the same reserve + settle from 2 threads at once (the machine's cores).
if ProcessInfo.processInfo.environment["ONLY"] == nil {
    let book = QuotaBook()
    let threads = ProcessInfo.processInfo.activeProcessorCount
    var samples: [Double] = []
    for _ in 0..<runs {
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                for i in 0..<cycles {
                    let now = start + Int64(i)
                    if case .success(let r) = book.reserve(budgets: budgets[(i + t) % 100], cost: worst, tokens: 1_200,
                                                           now: now, timeZone: zone) {
                        book.settle(r, cost: actual, tokens: 700, now: now)
                    }
                }
            }
        }
        let ns = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        samples.append(ns / Double(cycles * threads))
    }
    samples.sort()
    print("QuotaBook.reserve + settle, \(threads) threads contending".padding(toLength: 56, withPad: " ", startingAt: 0)
          + String(format: "median %7.1f ns  (wall time per cycle over all threads)", samples[runs / 2]))
}

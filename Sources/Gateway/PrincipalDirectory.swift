import Foundation
import Ledger
import Logging
import NIOConcurrencyHelpers
import Policy

/// Answers "whose key is this?" from memory. Keys live hashed in the ledger database; a
/// background thread polls the key store's change stamp four times a second (one integer read:
/// a key made by `keys create` works, and a revoked one stops, within a quarter of a second) and
/// swaps in a new snapshot only when keys were created or revoked, so identification never
/// touches the disk. A change made in this process (the admin API's) is applied at once, key
/// by key (`admit`, `forget`): it cannot fail once the store holds it, and its answer waits for
/// no reload (the poll still reloads every key once it sees the change).
public final class PrincipalDirectory: Sendable {
    private struct Keys {
        var snapshot: Snapshot
        /// Whether a reload is reading the store now.
        var reloading = false
        /// Changes made while a reload read the store, replayed onto what it read (which may
        /// predate them) before it is swapped in.
        var changesDuringReload: [(hash: String, principal: Principal, revoked: Bool)] = []

        mutating func change(_ hash: String, to principal: Principal, revoked: Bool) {
            snapshot.change(hash, to: principal, revoked: revoked)
            if reloading { changesDuringReload.append((hash, principal, revoked)) }
        }

        mutating func reloadEnded() {
            reloading = false
            changesDuringReload = []
        }
    }

    private let keys: NIOLockedValueBox<Keys>
    /// One reload at a time: two could swap in their snapshots out of order.
    private let reloadLock = NIOLock()
    private let keyStore: any APIKeyStore
    private let logger: Logger
    private let stopped = NIOLockedValueBox(false)

    /// The keys by the hash of their secret: those that work, and those revoked (whose refusals
    /// are recorded against the key and its user: an admin sees who still uses a revoked key).
    private struct Snapshot {
        var active: [String: Principal] = [:]
        var revoked: [String: Principal] = [:]

        mutating func change(_ hash: String, to principal: Principal, revoked isRevoked: Bool) {
            // A revocation is final: a key made through the API while a reload read the store,
            // and revoked elsewhere (`keys revoke`) before the read, is not brought back when
            // its admission is replayed onto what the read found.
            if !isRevoked, revoked[hash] != nil { return }
            active[hash] = isRevoked ? nil : principal
            revoked[hash] = isRevoked ? principal : nil
        }
    }

    public init(keyStore: any APIKeyStore, logger: Logger) throws {
        self.keyStore = keyStore
        self.logger = logger
        self.keys = .init(Keys(snapshot: try PrincipalDirectory.snapshot(keyStore)))
    }

    /// The principal for a presented secret, or nil if unknown or revoked.
    public func principal(forSecret secret: String) -> Principal? {
        guard APIKeySecret.looksValid(secret) else { return nil }
        let hash = APIKeySecret.hash(secret)
        return keys.withLockedValue { $0.snapshot.active[hash] }
    }

    /// Whose key a presented secret is, for a refusal's row: the caller's, or, for a revoked
    /// key, whose it was (recorded against them, not as a stranger's, though it stays within
    /// `unknown_callers`). At most one is set.
    public struct KeyHolder: Sendable {
        public var active: Principal?
        public var revoked: Principal?
    }

    public func holder(ofSecret secret: String?) -> KeyHolder {
        guard let secret, APIKeySecret.looksValid(secret) else { return KeyHolder() }
        let hash = APIKeySecret.hash(secret)
        return keys.withLockedValue { KeyHolder(active: $0.snapshot.active[hash], revoked: $0.snapshot.revoked[hash]) }
    }

    /// Every active key's principal (the admin API lists budgets per payer from it).
    public var all: [Principal] {
        keys.withLockedValue { Array($0.snapshot.active.values) }
    }

    /// A key the store now holds works from the next request on.
    public func admit(_ record: APIKeyRecord) {
        keys.withLockedValue { $0.change(record.secretHash, to: Self.principal(record), revoked: false) }
    }

    /// A key the store now holds revoked is refused from the next request on.
    public func forget(_ record: APIKeyRecord) {
        keys.withLockedValue { $0.change(record.secretHash, to: Self.principal(record), revoked: true) }
    }

    /// Reads every key from the store and swaps them in (the poll does, when the stamp moved).
    public func reload() throws {
        try reloadLock.withLock { try reloadAlone() }
    }

    private func reloadAlone() throws {
        keys.withLockedValue { $0.reloading = true }
        var snapshot: Snapshot
        do { snapshot = try PrincipalDirectory.snapshot(keyStore) } catch {
            keys.withLockedValue { $0.reloadEnded() }
            throw error
        }
        // Swapped under the lock, freed after it: the poller runs at nice 19, and every call
        // takes this lock, so it must not hold it while it frees a whole map.
        keys.withLockedValue {
            for change in $0.changesDuringReload { snapshot.change(change.hash, to: change.principal, revoked: change.revoked) }
            swap(&$0.snapshot, &snapshot)
            $0.reloadEnded()
        }
    }

    public func startPolling(every interval: TimeInterval = 0.25) {
        let thread = Thread(named: "tokenctl-keys", priority: .housekeeping) { [self] in
            var lastStamp = (try? keyStore.changeStamp()) ?? -1
            // Logged when it starts, changes or ends, not at every poll.
            var failing: String?
            while !stopped.withLockedValue({ $0 }) {
                Thread.sleep(forTimeInterval: interval)
                // The server closes the store right after `stopPolling`: do not poll a closed store.
                if stopped.withLockedValue({ $0 }) { break }
                do {
                    let stamp = try keyStore.changeStamp()
                    if stamp != lastStamp {
                        try reload()
                        lastStamp = stamp
                        logger.info("api keys reloaded", metadata: ["stamp": "\(stamp)"])
                    }
                    if failing != nil {
                        failing = nil
                        logger.info("api keys can be read again")
                    }
                } catch {
                    let problem = "\(error)"
                    if problem != failing {
                        logger.error("api key reload failed; keeping the previous keys", metadata: ["error": "\(problem)"])
                    }
                    failing = problem
                }
            }
        }
        thread.start()
    }

    public func stopPolling() {
        stopped.withLockedValue { $0 = true }
    }

    private static func snapshot(_ store: any APIKeyStore) throws -> Snapshot {
        var snapshot = Snapshot()
        for record in try store.list() {
            snapshot.change(record.secretHash, to: principal(record), revoked: record.isRevoked)
        }
        return snapshot
    }

    private static func principal(_ record: APIKeyRecord) -> Principal {
        Principal(keyId: record.id, user: record.user, team: record.team, role: record.admin ? .admin : .caller)
    }
}

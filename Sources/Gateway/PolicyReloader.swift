import Foundation
import Ledger
import Logging
import NIOConcurrencyHelpers
import Policy

/// Keeps the policy in force and replaces it when its files change. A background thread looks at
/// the files' sizes and modification times every `interval`: the directory's YAML files and the
/// files they name (a provider's `ca_file`, renewed in place); `reloadNow()` serves SIGHUP.
/// A changed directory is loaded in full and swapped in only if it has no problem. An invalid
/// change is logged with the loader's `file:line: field: message` lines and the last good
/// policy stays in force.
public final class PolicyReloader: Sendable {
    private let current: NIOLockedValueBox<PolicySet>
    private let directory: String?
    private let environment: [String: String]
    private let logger: Logger
    /// The zone budgets count in until a restart (the start-up policy's); nil when they follow
    /// the policy's (shared budgets, see `Enforcer.budgetTimeZone`).
    private let budgetZone: String?
    private let state = NIOLockedValueBox(State())
    /// One reload at a time (the watcher's and SIGHUP's), so that each compares its warnings with
    /// those of the policy it replaces.
    private let reloading = NIOLock()

    private struct State {
        var fingerprint: [String: String] = [:]
        /// Files outside the YAML that the last load named (`ca_file`), watched with the YAML
        /// (with their stamps as that load found them; the watcher needs only the paths).
        var namedFiles: [String: String] = [:]
        var stopped = false
        var reloads = 0
        var failedReloads = 0
        var lastError: String?
        /// The files as the last refused load found them: the same files refused again (a SIGHUP,
        /// or the watcher racing one) are not another refused change.
        var refused: [String: String]?
        /// The warnings of the policy in force, as logged: a reload logs only new ones.
        var warnings: Set<String> = []
    }

    public init(policy: PolicySet, directory: String?, environment: [String: String], logger: Logger,
                budgetsFollowTimeZone: Bool = false) {
        self.current = NIOLockedValueBox(policy)
        self.directory = directory
        self.environment = environment
        self.logger = logger
        self.budgetZone = budgetsFollowTimeZone ? nil : policy.plans.timeZone.identifier
        let warnings = Set(policy.warnings.map { "\($0)" })
        let fingerprint = directory.map { Self.fingerprint(of: $0, loaded: policy) } ?? [:]
        state.withLockedValue {
            $0.warnings = warnings
            $0.fingerprint = fingerprint
            $0.namedFiles = policy.namedFiles
        }
    }

    /// The policy in force: read once per call, so a call sees one consistent policy.
    public var policy: PolicySet { current.withLockedValue { $0 } }

    public var failedReloads: Int { state.withLockedValue { $0.failedReloads } }
    public var lastError: String? { state.withLockedValue { $0.lastError } }

    /// Loads the directory now; on success the new policy is in force. Returns whether it was.
    @discardableResult
    public func reloadNow() -> Bool {
        guard let directory else { return false }
        return reloading.withLock { reload(directory) }
    }

    private func reload(_ directory: String) -> Bool {
        // Taken before loading, so a change made meanwhile is seen next time.
        let fingerprint = Self.fingerprint(of: directory, namedFiles: state.withLockedValue { $0.namedFiles }.keys)
        do {
            let fresh = try PolicyLoader.load(directory: directory, environment: environment)
            try Self.checkNothingVanishes(from: policy, to: fresh)
            // Swapped under the lock, freed after it (`replaced` goes at the end of this scope):
            // the watcher runs at nice 19, and every call reads `current`.
            var replaced = fresh
            current.withLockedValue { swap(&$0, &replaced) }
            let old = replaced.version
            let warnings = fresh.warnings.map { "\($0)" }
            let (seen, wasRefused) = state.withLockedValue { s -> (Set<String>, Bool) in
                defer {
                    s.warnings = Set(warnings)
                    s.lastError = nil
                }
                s.fingerprint = Self.fingerprint(fingerprint, namedFiles: fresh.namedFiles)
                s.namedFiles = fresh.namedFiles
                s.reloads += 1
                s.refused = nil
                return (s.warnings, s.lastError != nil)
            }
            if old != fresh.version {
                var metadata: Logger.Metadata = ["version": "\(fresh.version)", "previous": "\(old)"]
                for (what, change) in fresh.plans.changes(from: replaced.plans) { metadata[what] = "\(change)" }
                logger.info("policy reloaded", metadata: metadata)
                let (from, to) = (replaced.plans.timeZone.identifier, fresh.plans.timeZone.identifier)
                if from != to {
                    let zones: Logger.Metadata = ["from": "\(from)", "to": "\(to)"]
                    if budgetZone == nil {
                        logger.info("time_zone changed: budgets, reports and metrics use the new zone", metadata: zones)
                    } else if to == budgetZone {
                        logger.info("time_zone back to the zone budgets count in: budgets, reports and metrics agree again",
                                    metadata: zones)
                    } else {
                        logger.warning("time_zone changed: budgets keep their periods until the next restart, reports and metrics use the new zone",
                                       metadata: zones)
                    }
                }
            } else if wasRefused {
                // The files are back to the policy in force: say so, after the refusal's errors.
                logger.info("policy files load again; the policy in force is unchanged",
                            metadata: ["version": "\(fresh.version)"])
            }
            // Those of the last policy were logged already; once is enough.
            for warning in warnings where !seen.contains(warning) { logger.warning("\(warning)") }
            return true
        } catch {
            state.withLockedValue {
                // Do not retry the same broken files every half second; a missing ca_file is
                // watched, so that it is loaded once it appears.
                $0.fingerprint = Self.fingerprint(fingerprint, namedFiles: error.namedFiles)
                $0.namedFiles = error.namedFiles
                if $0.refused != $0.fingerprint { $0.failedReloads += 1 }
                $0.refused = $0.fingerprint
                $0.lastError = error.description
            }
            logger.error("policy change refused; the previous policy stays in force",
                         metadata: ["version": "\(policy.version)"])
            for problem in error.problems { logger.error("\(problem)") }
            return false
        }
    }

    /// A reload may not lift every plan, limit and budget at once, nor put every gateway.yaml
    /// setting back to its default (`/metrics` open again, the admin API and CORS as shipped):
    /// a file deleted, emptied or cut short by an edit on its way (a deploy that removes then
    /// writes it) would leave calls unbudgeted, or `/metrics` open, until it is back. Running
    /// without plans, or on the defaults, takes a restart.
    static func checkNothingVanishes(from current: PolicySet, to fresh: PolicySet) throws(PolicyError) {
        var problems: [PolicyProblem] = []
        if !current.plans.limitsNothing, fresh.plans.limitsNothing {
            problems.append(PolicyProblem(file: "plans.yaml", line: 0, field: "",
                message: "the change would lift every plan, limit and budget (the file is gone, empty, or names no plan); to run without plans, remove it and restart tokenctl"))
        }
        if current.gateway != .defaults, fresh.gateway == .defaults {
            problems.append(PolicyProblem(file: "gateway.yaml", line: 0, field: "",
                message: "the change would put every setting back to its default at once (the file is gone, empty, or sets only defaults), /metrics access and the admin API among them; to run on the defaults, remove it and restart tokenctl"))
        }
        guard problems.isEmpty else { throw PolicyError(problems: problems, namedFiles: fresh.namedFiles) }
    }

    /// Starts watching the directory (no-op without one). A change is loaded once the files
    /// stayed the same for one `interval`, not while an edit or a copy may still be writing them.
    public func startWatching(every interval: TimeInterval = 0.5) {
        guard let directory else { return }
        let thread = Thread(named: "tokenctl-policy", priority: .housekeeping) { [self] in
            var settling = FileSettling()
            while !state.withLockedValue({ $0.stopped }) {
                Thread.sleep(forTimeInterval: interval)
                if state.withLockedValue({ $0.stopped }) { break }
                // Compared under the reload lock: a SIGHUP may have loaded the change meanwhile.
                reloading.withLock {
                    let (seen, files) = state.withLockedValue { ($0.fingerprint, $0.namedFiles) }
                    if settling.look(Self.fingerprint(of: directory, namedFiles: files.keys), loaded: seen) {
                        _ = reload(directory)
                    }
                }
            }
        }
        thread.start()
    }

    /// When a change of the files is loaded: once two looks in a row saw the same changed
    /// files, so that a file an editor or a copy is still writing is not read half done.
    struct FileSettling {
        private var changing: [String: String]?

        /// Takes one look (`now`) against what is loaded; true when the change should load now.
        mutating func look(_ now: [String: String], loaded: [String: String]) -> Bool {
            if now == loaded {
                changing = nil
                return false
            }
            if now == changing {
                changing = nil
                return true
            }
            changing = now
            return false
        }
    }

    public func stopWatching() {
        state.withLockedValue { $0.stopped = true }
    }

    /// Name → `FileStamp` of each YAML file (and path → the same of each named file), read every
    /// half second.
    private static func fingerprint(of directory: String, namedFiles: some Sequence<String>) -> [String: String] {
        var result: [String: String] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where name.hasSuffix(".yaml") || name.hasSuffix(".yml") {
            result[name] = FileStamp.of(directory + "/" + name)
        }
        for path in namedFiles { result[path] = FileStamp.of(path) }  // never a bare name: no clash
        return result
    }

    /// The fingerprint of a policy loaded before the watcher existed (at start-up): its files as
    /// that load found them, not as they are now, so that a change made in between (a deploy
    /// still writing the files as the service starts) is seen and loaded. Other YAML files in the
    /// directory (which the loader does not read) are taken as they are.
    static func fingerprint(of directory: String, loaded policy: PolicySet) -> [String: String] {
        var result = fingerprint(of: directory, namedFiles: [String]())
        // A file the load did not find has no stamp: one that appeared since is a change.
        for (name, _) in PolicyLoader.knownFiles { result[name] = policy.sourceFiles[name] }
        result.merge(policy.namedFiles) { _, loaded in loaded }
        return result
    }

    /// A fingerprint taken before a load, brought to the files that load named: those it added
    /// with their stamps as the load found them, not as they are now (a CA file that appeared
    /// while a load found it missing would otherwise look loaded, and never be).
    static func fingerprint(_ before: [String: String], namedFiles: [String: String]) -> [String: String] {
        var result = before.filter { !$0.key.contains("/") || namedFiles[$0.key] != nil }
        for (path, stamp) in namedFiles where result[path] == nil { result[path] = stamp }
        return result
    }
}

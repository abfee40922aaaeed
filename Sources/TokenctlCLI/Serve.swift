import ArgumentParser
import Dispatch
import Foundation
import Gateway
import Logging
import NIOCore
import Policy
import PostgresLedger
import ServiceLifecycle

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the proxy.",
        discussion: """
            Stops on SIGINT or SIGTERM: stops accepting and closes idle connections, lets calls in \
            flight finish for up to --drain-timeout seconds, cancels the rest (recorded as \
            interrupted), flushes and closes the ledger, exits 0 (1 when calls are left without a row: the \
            in-flight journal keeps them for the next start). Policy file changes are picked up within a second (SIGHUP reloads at \
            once); a change with problems is refused and logged, and the previous policy stays in force. \
            With a PostgreSQL ledger, give the password in PGPASSWORD rather than in the --db URL: a \
            command line is visible to every user of the host.
            """)

    @Option(help: "Directory of policy files (providers.yaml, prices.yaml, and the optional gateway.yaml and plans.yaml).")
    var policies: String = "policies"

    @OptionGroup var ledger: LedgerOptions

    @Option(help: "With a PostgreSQL ledger: the local directory of the in-flight journal (calls a crash interrupts are recorded from it at the next start). A SQLite ledger keeps it beside its file.")
    var journal: String = "data"

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one and prints it).")
    var port: Int = 8080

    @Option(help: "Event loop threads (default: one per core).")
    var threads: Int = System.coreCount

    @Option(help: "Seconds calls in flight may take to finish after SIGTERM/SIGINT before they are cancelled.")
    var drainTimeout: Double = 30

    @Flag(help: "Benchmarks only: serve without recording calls (the ledger-off arm of bench/run, which measures what recording costs). Nothing is accounted; never use it in production.")
    var noLedger = false

    @Option(help: "With a PostgreSQL ledger: seconds without a heartbeat after which a replica counts as dead and the other replicas release its budget reservations (they are released within this plus the 5 s reaper interval).")
    var replicaTimeout: Double = 15

    func validate() throws {
        guard drainTimeout >= 0, drainTimeout <= 3_600 else {
            throw ValidationError("--drain-timeout must be between 0 and 3600 seconds")
        }
        guard replicaTimeout >= 1, replicaTimeout <= 3_600 else {
            throw ValidationError("--replica-timeout must be between 1 and 3600 seconds (heartbeats go every 2 s)")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = Logger(label: "tokenctl")
        let policy = try loadPolicyOrExit(policies)
        for warning in policy.warnings { logger.warning("\(warning)") }
        if noLedger { logger.warning("--no-ledger: calls are NOT recorded (benchmark mode)") }
        let backend = try ledger.creating()
        // Connections are bounded by max_connections (gateway.yaml), not by a soft limit meant for select().
        let descriptors = DescriptorLimit.raise()
        if policy.gateway.maxConnections == nil {
            logger.info("open-file limit \(descriptors): max_connections \(DescriptorLimit.automaticConnectionCap(descriptors: descriptors)) (half the limit, less 64; gateway.yaml may set another)")
        } else if let cap = policy.gateway.maxConnections, cap > descriptors - 64 {
            logger.warning("max_connections \(cap) is above the open-file limit \(descriptors) less 64: connections past the limit cannot be accepted, and calls may find no descriptor for their provider (raise LimitNOFILE or lower max_connections)")
        }

        let server: GatewayServer
        do {
            server = try GatewayServer.start(
                configuration: GatewayConfiguration(
                    host: host, port: port, eventLoopThreads: threads,
                    sharedQuota: SharedQuotaSettings(replicaTimeout: .milliseconds(Int64(replicaTimeout * 1_000))),
                    recordCalls: !noLedger),
                policy: policy, policyDirectory: policies, databasePath: ledger.db, journalDirectory: journal,
                logger: logger)
        } catch is SocketAddressError {
            throw CommandFailure("cannot listen on \(host): not an address of this host, nor a name that resolves to one (see --host)")
        } catch let error as IOError {
            let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            switch error.errnoCode {
            case EADDRINUSE:
                throw CommandFailure("cannot listen on \(address): the address is already in use (pick another with --port)")
            case EACCES:
                throw CommandFailure("cannot listen on \(address): permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE; pick another with --port)")
            case EADDRNOTAVAIL:
                throw CommandFailure("cannot listen on \(address): no interface of this host has that address (see --host)")
            default:
                throw CommandFailure("cannot listen on \(address): \(String(cString: strerror(error.errnoCode)))")
            }
        }
        let service = GatewayService(server: server, drainTimeout: .milliseconds(Int64(drainTimeout * 1_000)),
                                     logger: logger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: service)],
                                                                          logger: logger))
        // Signals are caught before the port is announced: a SIGTERM sent as soon as the
        // "listening" line appears must stop the gateway gracefully, not kill it. SIGTERM and
        // SIGINT trigger the service group's graceful shutdown; SIGHUP reloads the policy now.
        let signals = DispatchQueue(label: "tokenctl.signals")
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: signals)
            source.setEventHandler {
                if sig == SIGHUP {
                    server.reloadPolicy()
                } else {
                    Task { await group.triggerGracefulShutdown() }
                }
            }
            source.resume()
            sources.append(source)
        }
        defer { sources.forEach { $0.cancel() } }

        // Written unbuffered: scripts wait for this line to learn the port.
        FileHandle.standardOutput.write(Data(
            "tokenctl listening on \(server.baseURL) (policies \(policies) version \(policy.version), ledger \(noLedger ? "off" : backend.description))\n".utf8))
        try await group.run()
    }
}

/// The running gateway as a service: waits for the group's graceful shutdown (SIGTERM/SIGINT),
/// then drains it (see `GatewayServer.drain`), off the concurrency pool since draining blocks.
struct GatewayService: Service {
    let server: GatewayServer
    let drainTimeout: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        logger.info("shutting down: draining calls in flight", metadata: ["in_flight": "\(server.callsInFlight)"])
        let server = self.server, timeout = drainTimeout
        let cut = await withCheckedContinuation { (done: CheckedContinuation<Int, Never>) in
            Thread.detachNewThread {
                done.resume(returning: server.drain(timeout: timeout))
            }
        }
        if cut > 0 {
            logger.warning("the drain timeout cut calls still in flight: recorded as interrupted (their clients' answers end there)",
                           metadata: ["calls": "\(cut)", "drain_timeout_seconds": "\(timeout.components.seconds)"])
        }
        let left = server.leftForNextStart
        let calls = left.withRow + left.markersOnly
        guard calls == 0 else {
            // Exit 1: a supervisor or operator must see that the ledger lacks calls for now.
            logger.error("stopped: calls without a row are kept in the in-flight journal for the next start",
                         metadata: ["with_usage": "\(left.withRow)", "interrupted": "\(left.markersOnly)"])
            throw CommandFailure("\(calls) call\(calls == 1 ? "" : "s") could not be recorded before stopping "
                                 + "(\(left.withRow) with their usage, \(left.markersOnly) as interrupted); "
                                 + "the next start on this ledger and journal records them")
        }
        logger.info("stopped: ledger flushed and closed")
    }
}

/// Loads the policy directory, or prints every problem as `file:line: field: message` and exits 1.
func loadPolicyOrExit(_ directory: String) throws -> PolicySet {
    do {
        return try PolicyLoader.load(directory: directory)
    } catch {
        for problem in error.problems {
            FileHandle.standardError.write(Data("\(problem)\n".utf8))
        }
        throw ExitCode(1)
    }
}

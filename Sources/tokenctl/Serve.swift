import ArgumentParser
import Dispatch
import Foundation
import Gateway
import Logging
import NIOCore
import Policy

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the proxy.",
        discussion: """
            Stops on SIGINT or SIGTERM: stops accepting, cancels calls still in flight (recorded), \
            flushes the ledger. Policy file changes are picked up within a second (SIGHUP reloads at \
            once); a change with problems is refused and logged, and the previous policy stays in force.
            """)

    @Option(help: "Directory of policy files (providers.yaml, prices.yaml, gateway.yaml).")
    var policies: String = "policies"

    @OptionGroup var ledger: LedgerOptions

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one and prints it).")
    var port: Int = 8080

    @Option(help: "Event loop threads (one per core by default).")
    var threads: Int = System.coreCount

    func run() throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = Logger(label: "tokenctl")
        let policy = try loadPolicyOrExit(policies)
        for warning in policy.warnings { logger.warning("\(warning)") }
        try createParentDirectory(of: ledger.db)

        let server: GatewayServer
        do {
            server = try GatewayServer.start(
                configuration: GatewayConfiguration(host: host, port: port, eventLoopThreads: threads),
                policy: policy, policyDirectory: policies, databasePath: ledger.db, logger: logger)
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw CommandFailure("cannot listen on \(host):\(port): the address is already in use (pick another with --port)")
        }
        // Written unbuffered: scripts wait for this line to learn the port.
        FileHandle.standardOutput.write(Data(
            "tokenctl listening on \(server.baseURL) (policies \(policies) version \(policy.version), ledger \(ledger.db))\n".utf8))

        let stop = DispatchQueue(label: "tokenctl.signals")
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: stop)
            source.setEventHandler {
                logger.info("shutting down")
                do { try server.shutdown() } catch { logger.error("shutdown: \(error)") }
            }
            source.resume()
            sources.append(source)
        }
        signal(SIGHUP, SIG_IGN)
        let hangUp = DispatchSource.makeSignalSource(signal: SIGHUP, queue: stop)
        hangUp.setEventHandler { server.reloadPolicy() }
        hangUp.resume()
        sources.append(hangUp)
        server.wait()
        _ = sources
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

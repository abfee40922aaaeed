import ArgumentParser
import FakeLLM
import FakeLLMTLS
import Foundation

/// `fakellm`: runs a FakeLLM server until SIGINT or SIGTERM.
struct FakeLLMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fakellm",
        abstract: "A fast fake OpenAI/Anthropic provider for tests and benchmarks.",
        discussion: """
            OpenAI base URL: http://HOST:PORT/v1. Anthropic base URL: http://HOST:PORT.
            With --tls-ca-out: https:// (HTTP/2 or HTTP/1.1).
            Per-request knobs: x-fake-chunks, x-fake-first-byte-delay-ms, x-fake-chunk-gap-ms,
            x-fake-fail (\(FakeFailure.allCases.map(\.rawValue).joined(separator: " | "))),
            x-fake-status, x-fake-cached-tokens, x-fake-cache-write-tokens, x-fake-cache-write-1h-tokens,
            x-fake-reasoning-tokens,
            x-fake-web-searches (Anthropic server_tool_use; Responses web_search_call),
            x-fake-file-searches (Responses file_search_call),
            x-fake-audio-input-tokens, x-fake-audio-output-tokens (chat completions' audio_tokens),
            x-fake-inference-geo (Anthropic's usage.inference_geo when the request names none),
            x-fake-header-bytes (pads the answer head with that many bytes),
            x-fake-hold (NAME: the answer waits until a test embedding FakeLLM calls release(NAME);
            here, for good: a provider that never answers).
            A request's service_tier (priority, flex) is reported as served;
            Anthropic's speed and inference_geo are echoed in its usage.
            """)

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 0

    @Option(help: "Event-loop threads.")
    var threads = 1

    @Option(help: "Content deltas (output tokens) per answer.")
    var chunks = 8

    @Option(name: .customLong("chunk-gap-ms"), help: "Milliseconds before each content delta.")
    var chunkGapMS = 0.0

    @Option(name: .customLong("first-byte-delay-ms"), help: "Milliseconds before the first response byte.")
    var firstByteDelayMS = 0.0

    @Option(name: .customLong("api-key"), help: "Require this key (OpenAI: Bearer; Anthropic: x-api-key or Bearer).")
    var apiKey: String?

    @Option(name: .customLong("tls-ca-out"), help: ArgumentHelp(
        "Serve HTTPS (HTTP/2 or HTTP/1.1 by ALPN) with a certificate made at start, and write the CA that signed it to this file, for clients to trust.",
        valueName: "path"))
    var tlsCAOut: String?

    @Flag(help: "Flush events due at the same instant together (less CPU; event boundaries may merge on the wire).")
    var coalesceEvents = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard chunks >= 0 else { throw ValidationError("--chunks must not be negative") }
        guard chunkGapMS >= 0, firstByteDelayMS >= 0 else { throw ValidationError("delays must not be negative") }
    }

    func run() throws {
        var transport: any FakeTransport = CleartextTransport()
        if let tlsCAOut {
            let tls = try FakeTLS.generate()
            try tls.writeCertificateAuthority(to: tlsCAOut)
            transport = tls
        }
        // Nobody can read recorded exchanges from outside the process, so do not keep them.
        let server = try FakeLLMServer.start(FakeLLMConfiguration(
            host: host, port: port, threads: threads,
            firstByteDelay: .nanoseconds(Int64(firstByteDelayMS * 1_000_000)),
            chunkCount: chunks,
            chunkGap: .nanoseconds(Int64(chunkGapMS * 1_000_000)),
            requiredAPIKey: apiKey, recordExchanges: false, coalesceEvents: coalesceEvents, transport: transport))
        print("fakellm listening on \(server.baseURL)")
        fflush(nil)  // all streams: `stdout` itself is not concurrency-safe to name

        let stop = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)  // let the dispatch source see it instead
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            sources.append(source)
        }
        stop.wait()
        try server.shutdown()
        withExtendedLifetime(sources) {}
    }
}

FakeLLMCommand.main()

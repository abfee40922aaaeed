import FakeLLM
import Logging
import NIOCore
import NIOPosix
import Testing
import Upstream

#if canImport(Glibc)
import Glibc
#endif

/// A rough in-process figure: FakeLLM and the client share the machine, so
/// compare runs with each other, not with the prototype's wrk numbers.
/// Run with `UPSTREAM_BENCH=1 swift test -c release --filter UpstreamThroughputTests`.
@Suite(.enabled(if: getenv("UPSTREAM_BENCH") != nil))
struct UpstreamThroughputTests {
    /// Keeps `concurrency` calls in flight from one event loop, starting the next
    /// call from the previous one's `upstreamEnd`, as a relay would.
    private final class Pump: UpstreamResponseHandler {
        let client: UpstreamClient
        let loop: any EventLoop
        let request: UpstreamRequest
        let total: Int
        let done: EventLoopPromise<(ok: Int, failed: Int, micros: [Int64])>
        var started = 0, ok = 0, failed = 0
        var latencies: [Int64] = []

        init(client: UpstreamClient, loop: any EventLoop, request: UpstreamRequest, total: Int) {
            self.client = client
            self.loop = loop
            self.request = request
            self.total = total
            done = loop.makePromise()
            latencies.reserveCapacity(total)
        }

        func launch() {
            started += 1
            _ = client.start(request, on: loop, handler: Call(pump: self, started: .now()))
        }

        func upstreamHead(_ head: UpstreamHead) {}
        func upstreamBody(_ chunk: ByteBuffer, endFollows: Bool) {}
        func upstreamEnd(_ result: Result<UpstreamTiming, UpstreamError>) {}

        func finished(ok success: Bool, since: NIODeadline) {
            if success { ok += 1 } else { failed += 1 }
            latencies.append((NIODeadline.now() - since).nanoseconds / 1000)
            if started < total { launch() }
            if ok + failed == total { done.succeed((ok, failed, latencies)) }
        }
    }

    private final class Call: UpstreamResponseHandler {
        let pump: Pump
        let started: NIODeadline
        var bytes = 0
        init(pump: Pump, started: NIODeadline) {
            self.pump = pump
            self.started = started
        }
        func upstreamHead(_ head: UpstreamHead) {}
        func upstreamBody(_ chunk: ByteBuffer, endFollows: Bool) { bytes += chunk.readableBytes }
        func upstreamEnd(_ result: Result<UpstreamTiming, UpstreamError>) {
            if case .success = result { pump.finished(ok: bytes > 0, since: started) } else {
                pump.finished(ok: false, since: started)
            }
        }
    }

    private func measure(stream: Bool, concurrency: Int, total: Int) async throws -> String {
        let fake = try await FakeLLMServer.started(FakeLLMConfiguration(chunkCount: 8, recordExchanges: false))
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = UpstreamClient(logger: Logger(label: "bench"))
        let request = UpstreamRequest(
            url: fake.openAIBaseURL + "/chat/completions",
            headers: [("Content-Type", "application/json"), ("Authorization", "Bearer sk-bench")],
            body: ByteBuffer(string: #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":\#(stream)}"#))
        let loop = loops.next()
        let began = NIODeadline.now()
        let result = try await loop.flatSubmit {
            let pump = Pump(client: client, loop: loop, request: request, total: total)
            for _ in 0..<min(concurrency, total) { pump.launch() }
            return pump.done.futureResult
        }.get()
        let seconds = Double((NIODeadline.now() - began).nanoseconds) / 1e9
        client.shutdown()
        try await loops.shutdownGracefully()
        try await fake.shutdownGracefully()
        let sorted = result.micros.sorted()
        let line = "stream=\(stream) c=\(concurrency) n=\(total): \(Int(Double(result.ok) / seconds)) req/s, "
            + "median \(sorted[sorted.count / 2]) µs, p99 \(sorted[sorted.count * 99 / 100]) µs, failed \(result.failed)"
        #expect(result.failed == 0)
        return line
    }

    @Test func relayThroughput() async throws {
        for (stream, concurrency, total) in [(false, 1, 3000), (false, 16, 20000), (true, 1, 2000), (true, 16, 10000)] {
            print("upstream bench:", try await measure(stream: stream, concurrency: concurrency, total: total))
        }
    }
}

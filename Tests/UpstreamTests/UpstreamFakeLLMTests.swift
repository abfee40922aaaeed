import FakeLLM
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import Upstream

/// End to end against FakeLLM on 127.0.0.1: real curl, real sockets.
@Suite struct UpstreamFakeLLMTests {
    let group = MultiThreadedEventLoopGroup.singleton

    private func withFake<T>(
        _ configuration: UpstreamConfiguration = .init(),
        _ body: (FakeLLMServer, UpstreamClient) async throws -> T
    ) async throws -> T {
        let fake = try await FakeLLMServer.started(FakeLLMConfiguration(chunkCount: 8))
        let client = UpstreamClient(configuration: configuration, logger: Logger(label: "upstream-test"))
        do {
            let result = try await body(fake, client)
            client.shutdown()
            try await fake.shutdownGracefully()
            return result
        } catch {
            client.shutdown()
            try? await fake.shutdownGracefully()
            throw error
        }
    }

    private func chat(_ fake: FakeLLMServer, id: String, stream: Bool, headers: [(String, String)] = [],
                      totalTimeoutMs: Int = 30_000) -> UpstreamRequest {
        UpstreamRequest(
            url: fake.openAIBaseURL + "/chat/completions",
            headers: [("Content-Type", "application/json"), ("Authorization", "Bearer sk-test"),
                      (FakeHeader.requestID, id)] + headers,
            body: ByteBuffer(string: #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":\#(stream)}"#),
            totalTimeoutMs: totalTimeoutMs)
    }

    @Test func nonStreamingPostGetsStatusHeadersAndExactBody() async throws {
        try await withFake { fake, client in
            let r = try await client.run(chat(fake, id: "plain-1", stream: false), on: group.next())
            let exchange = try #require(fake.exchange(requestID: "plain-1"))
            let head = try #require(r.head)
            #expect(head.status == 200)
            #expect(head.first("content-type") == "application/json")
            #expect(head.first("content-length") == String(exchange.responseBody.count))
            #expect(head.first("x-request-id") == "plain-1")
            #expect(r.body == exchange.responseBody)
            #expect(r.wellOrdered)
            #expect(r.offLoopCalls == 0)
            #expect(exchange.requestHeader("content-type") == "application/json")
            #expect(exchange.requestHeader("expect") == nil)
            guard case .success(let timing) = r.end else {
                Issue.record("expected success, got \(String(describing: r.end))")
                return
            }
            #expect(timing.bytesReceived == exchange.responseBody.count)
        }
    }

    @Test func streamingResponseArrivesInSeveralChunks() async throws {
        try await withFake { fake, client in
            let request = chat(fake, id: "stream-1", stream: true,
                               headers: [(FakeHeader.chunks, "6"), (FakeHeader.chunkGapMS, "15")])
            let r = try await client.run(request, on: group.next())
            let exchange = try #require(fake.exchange(requestID: "stream-1"))
            #expect(r.head?.first("content-type")?.hasPrefix("text/event-stream") == true)
            #expect(r.chunks.count > 3)
            #expect(r.body == exchange.responseBody)
            #expect(r.text.hasSuffix("data: [DONE]\n\n"))
            #expect(r.wellOrdered)
            #expect(r.offLoopCalls == 0)
        }
    }

    @Test func fiftyConcurrentStreamsAllCompleteWithExactBytes() async throws {
        try await withFake { fake, client in
            let results = try await withThrowingTaskGroup(of: (String, Recording).self) { tasks in
                for i in 0..<50 {
                    let id = "many-\(i)"
                    let request = chat(fake, id: id, stream: true,
                                       headers: [(FakeHeader.chunks, "20"), (FakeHeader.chunkGapMS, "2")])
                    let loop = group.next()
                    tasks.addTask { (id, try await client.run(request, on: loop)) }
                }
                return try await tasks.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            #expect(results.count == 50)
            for (id, r) in results {
                let exchange = try #require(fake.exchange(requestID: id))
                #expect(r.body == exchange.responseBody, "\(id)")
                #expect(r.head?.status == 200)
                #expect(r.wellOrdered)
                #expect(r.offLoopCalls == 0)
                if case .failure(let error) = r.end { Issue.record("\(id): \(error)") }
            }
        }
    }

    @Test func providerErrorStatusIsRelayed() async throws {
        try await withFake { fake, client in
            let r = try await client.run(
                chat(fake, id: "e500", stream: false, headers: [(FakeHeader.fail, "http-500")]), on: group.next())
            #expect(r.head?.status == 500)
            #expect(r.body == fake.exchange(requestID: "e500")?.responseBody)
            if case .failure(let error) = r.end { Issue.record("unexpected \(error)") }
        }
    }

    @Test func cutMidStreamIsATransportErrorAfterThePartialBody() async throws {
        try await withFake { fake, client in
            let r = try await client.run(
                chat(fake, id: "cut", stream: true, headers: [(FakeHeader.fail, "cut-mid-stream")]), on: group.next())
            guard case .transport(let code, let message) = r.error else {
                Issue.record("expected transport error, got \(String(describing: r.end))")
                return
            }
            #expect(code != 0 && !message.isEmpty)
            #expect(r.head?.status == 200)
            #expect(r.body == fake.exchange(requestID: "cut")?.responseBody)
            #expect(r.wellOrdered)
        }
    }

    @Test func resetBeforeHeadersIsAnErrorWithoutHead() async throws {
        try await withFake { fake, client in
            let r = try await client.run(
                chat(fake, id: "rst", stream: false, headers: [(FakeHeader.fail, "reset-before-headers")]),
                on: group.next())
            switch r.error {
            case .transport, .connect: break
            default: Issue.record("expected transport/connect error, got \(String(describing: r.end))")
            }
            #expect(r.calls == ["end"])
        }
    }

    @Test func firstByteDelayBeyondTheDeadlineTimesOut() async throws {
        try await withFake { fake, client in
            let r = try await client.run(
                chat(fake, id: "slow", stream: true, headers: [(FakeHeader.firstByteDelayMS, "3000")],
                     totalTimeoutMs: 250),
                on: group.next())
            guard case .timeout = r.error else {
                Issue.record("expected timeout, got \(String(describing: r.end))")
                return
            }
            #expect(r.calls == ["end"])
        }
    }

    @Test func firstByteTimeIsMeasured() async throws {
        try await withFake { fake, client in
            let r = try await client.run(
                chat(fake, id: "fb", stream: true, headers: [(FakeHeader.firstByteDelayMS, "120")]), on: group.next())
            guard case .success(let timing) = r.end else {
                Issue.record("expected success, got \(String(describing: r.end))")
                return
            }
            #expect(timing.firstByteMicros >= 110_000)
            #expect(timing.totalMicros >= timing.firstByteMicros)
        }
    }

    @Test func cancelMidStreamEndsCancelledAndTheProviderSeesTheClose() async throws {
        try await withFake { fake, client in
            let request = chat(fake, id: "cancel-1", stream: true,
                               headers: [(FakeHeader.chunks, "200"), (FakeHeader.chunkGapMS, "20")])
            let r = try await client.run(request, on: group.next(), script: Script(cancelAfterChunks: 2))
            #expect(r.error == .cancelled)
            #expect(r.wellOrdered)
            #expect(r.offLoopCalls == 0)
            // FakeLLM records an unfinished exchange when the client connection closes.
            try await waitUntil { fake.exchange(requestID: "cancel-1") != nil }
            let exchange = try #require(fake.exchange(requestID: "cancel-1"))
            #expect(!exchange.completed)
            #expect(exchange.responseChunks.count < 50)
        }
    }

    @Test func pauseAndResumeDeliverEveryByteInOrder() async throws {
        try await withFake { fake, client in
            let request = chat(fake, id: "pause-1", stream: true,
                               headers: [(FakeHeader.chunks, "40"), (FakeHeader.chunkGapMS, "1")])
            let r = try await client.run(
                request, on: group.next(), script: Script(pauseEachChunkFor: .milliseconds(3)))
            #expect(r.body == fake.exchange(requestID: "pause-1")?.responseBody)
            #expect(r.wellOrdered)
            if case .failure(let error) = r.end { Issue.record("unexpected \(error)") }
        }
    }
}

extension UpstreamFakeLLMTests {
    /// A channel handler starts its transfer on its event loop; the transfers one pass of that
    /// loop starts reach the curl thread with one wake, not one each (a wake preempts the loop
    /// when the two threads share a core).
    @Test func transfersStartedInOnePassOfAnEventLoopWakeCurlOnce() async throws {
        try await withFake { fake, client in
            let loop = group.next()
            /// Starts `count` transfers in one pass of `loop` and returns how many wakes they took.
            func startInOnePass(_ count: Int, tag: String) async throws -> Int {
                let before = client.driver.commandWakeups
                let ends = try await loop.flatSubmit { () -> EventLoopFuture<[Recording]> in
                    let runs = (0..<count).map { i in
                        let handler = RecordingHandler(eventLoop: loop, script: Script())
                        handler.transfer = client.start(chat(fake, id: "\(tag)-\(i)", stream: false), on: loop, handler: handler)
                        // Time for a woken curl thread to drain the queue, so that a wake per
                        // transfer would show as one per transfer; none after the last, so that
                        // the pass ends with a command queued.
                        if i < count - 1 { usleep(5_000) }
                        return handler.done.futureResult
                    }
                    return EventLoopFuture.whenAllSucceed(runs, on: loop)
                }.get()
                #expect(ends.allSatisfy { $0.head?.status == 200 })
                return client.driver.commandWakeups - before
            }
            // One, or none if the thread drained the queue by itself (poll's timeout, once a
            // second). A wake per transfer would be eight.
            let quiet = try await startInOnePass(8, tag: "pass")
            #expect(quiet <= 1)

            // While another transfer streams, the thread drains the queue for its socket during
            // the pass, and each drain makes the next start schedule another wake after the pass:
            // only the first of those may wake the thread.
            // The stream is relayed on a loop of its own, which keeps taking its chunks.
            let streamLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let streaming = RecordingHandler(eventLoop: streamLoop.next(), script: Script())
            streaming.transfer = client.start(
                chat(fake, id: "busy", stream: true, headers: [(FakeHeader.chunks, "60"), (FakeHeader.chunkGapMS, "1")]),
                on: streamLoop.next(), handler: streaming)
            let busy = try await startInOnePass(8, tag: "busy-pass")
            #expect(busy <= 1)
            #expect(try await streaming.done.futureResult.get().head?.status == 200)
            try await streamLoop.shutdownGracefully()

            // From elsewhere (no pass to wait for), a transfer wakes the thread at once.
            let elsewhere = client.driver.commandWakeups
            let handler = RecordingHandler(eventLoop: loop, script: Script())
            handler.transfer = client.start(chat(fake, id: "off-loop", stream: false), on: loop, handler: handler)
            #expect(try await handler.done.futureResult.get().head?.status == 200)
            #expect(client.driver.commandWakeups - elsewhere == 1)
        }
    }
}

extension UpstreamFakeLLMTests {
    /// The easy handles a burst leaves are freed once unused for `easyHandleIdleRelease`, down to
    /// the few kept when idle (4), while another transfer still runs.
    @Test func handlesABurstLeftAreFreedOnceUnusedDownToAFew() async throws {
        try await withFake(UpstreamConfiguration(easyHandleIdleRelease: .milliseconds(100))) { fake, client in
            let loop = group.next()
            let freed = { client.driver.unusedHandlesFreed.load(ordering: .relaxed) }
            // A stream that runs across the burst and its release until the test ends it (one
            // that ended on its own, after 3, 8, then 20 s, ended before this task reached its
            // check in full runs on two cores; so did one at the default 30 s deadline, in a run
            // whose test pool starved this test for 84 s).
            let streaming = RecordingHandler(eventLoop: loop, script: Script())
            streaming.transfer = client.start(
                chat(fake, id: "long", stream: true, headers: [(FakeHeader.chunks, "2"), (FakeHeader.chunkGapMS, "600000")],
                     totalTimeoutMs: 900_000),
                on: loop, handler: streaming)
            // Each answered after 300 ms, so the eight are in flight at once, each on a handle of
            // its own (instant answers on a loaded machine let a late one reuse an early one's: 7 kept).
            let burst = (0..<8).map { i in
                let handler = RecordingHandler(eventLoop: loop, script: Script())
                handler.transfer = client.start(chat(fake, id: "burst-\(i)", stream: false,
                                                     headers: [(FakeHeader.firstByteDelayMS, "300")]),
                                                on: loop, handler: handler)
                return handler.done.futureResult
            }
            for end in burst { #expect(try await end.get().head?.status == 200) }
            // 8 kept: 4 freed, each at the first pass 100 ms after it came back (a pass per chunk).
            var deadline = ContinuousClock.now + .seconds(5)
            while freed() < 4, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(freed() == 4)
            // The stream ends: its handle comes back (5 kept), and one more goes once unused.
            streaming.transfer?.cancel()
            #expect(try await streaming.done.futureResult.get().head?.status == 200)
            deadline = ContinuousClock.now + .seconds(5)
            while freed() < 5, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(freed() == 5)
            // The last 4 stay (the thread still passes once a second).
            try await Task.sleep(for: .milliseconds(2_500))
            #expect(freed() == 5)
            // And the next call takes one of them.
            #expect(try await client.run(chat(fake, id: "after", stream: false), on: loop).head?.status == 200)
        }
    }
}

extension UpstreamFakeLLMTests {
    /// A stream lets its request body go (the copy and libcurl's upload buffer) once its head has
    /// come and the body has gone out: while the answer still streams, with the body whole at
    /// the provider.
    @Test(.enabled(if: CurlRuntime.releasesSentBodies, "libcurl 7.88.x only"))
    func aStreamLetsItsBodyGoOnceItsHeadCame() async throws {
        try await withFake { fake, client in
            let released: @Sendable () -> Int = { client.driver.sentBodiesReleased.load(ordering: .relaxed) }
            let loop = group.next()
            // Over 64 KiB: libcurl sends it from its upload buffer on HTTP/1.1 as well.
            var request = chat(fake, id: "long-prompt", stream: true,
                               headers: [(FakeHeader.chunks, "80"), (FakeHeader.chunkGapMS, "100")])
            let prompt = String(repeating: "context ", count: 25_000)
            request.body = ByteBuffer(string: #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\#(prompt)"}],"stream":true}"#)
            let sentBody = Array(request.body.readableBytesView)
            let handler = RecordingHandler(eventLoop: loop, script: Script())
            handler.transfer = client.start(request, on: loop, handler: handler)
            // When the release shows, seen from the event loop's thread (a test task polling it
            // ran seconds late when the whole suite ran on two cores; the loop's own thread does not).
            let seen = loop.makePromise(of: NIODeadline?.self)
            let giveUp = NIODeadline.now() + .seconds(10)
            loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(5)) { task in
                if released() >= 1 || NIODeadline.now() > giveUp {
                    task.cancel()
                    seen.succeed(released() >= 1 ? NIODeadline.now() : nil)
                }
            }
            let releasedAt = try #require(try await seen.futureResult.get(), "the body was not let go within 10 s")
            #expect(released() == 1)
            let r = try await handler.done.futureResult.get()
            // Released while the answer streamed: 80 chunks 100 ms apart take about eight seconds.
            #expect(r.chunkTimes.filter { $0 > releasedAt }.count >= 5)
            let exchange = try #require(fake.exchange(requestID: "long-prompt"))
            #expect(exchange.requestBody == sentBody)
            #expect(r.body == exchange.responseBody)
            #expect(r.text.hasSuffix("data: [DONE]\n\n"))
            #expect(r.wellOrdered)
            // The handle goes back to the pool with curl's defaults: its next call (the same handle,
            // the only one kept) sends a body of its own over 64 KiB, from an upload buffer
            // allocated again, whole.
            var next = chat(fake, id: "after-release", stream: false)
            next.body = ByteBuffer(string: #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\#(String(repeating: "other ", count: 20_000))"}]}"#)
            let nextBody = Array(next.body.readableBytesView)
            #expect(try await client.run(next, on: loop).head?.status == 200)
            #expect(try #require(fake.exchange(requestID: "after-release")).requestBody == nextBody)
        }
    }
}

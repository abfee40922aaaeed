import NIOCore
import NIOPosix
@testable import Upstream

/// What a transfer's handler saw, checked by the tests.
struct Recording: Sendable {
    var head: UpstreamHead?
    var chunks: [ByteBuffer] = []
    /// When each chunk arrived.
    var chunkTimes: [NIODeadline] = []
    var end: Result<UpstreamTiming, UpstreamError>?
    /// "head", "body", "end" in call order.
    var calls: [String] = []
    /// Calls made off the transfer's event loop (must stay 0).
    var offLoopCalls = 0

    var body: [UInt8] { chunks.flatMap { Array($0.readableBytesView) } }
    var text: String { String(decoding: body, as: UTF8.self) }
    var error: UpstreamError? {
        if case .failure(let e) = end { return e }
        return nil
    }
    /// head? body* end, exactly one end.
    var wellOrdered: Bool {
        guard calls.last == "end", calls.filter({ $0 == "end" }).count == 1 else { return false }
        let rest = calls.dropLast()
        if let first = rest.first, first == "head" {
            return rest.dropFirst().allSatisfy { $0 == "body" }
        }
        return rest.isEmpty
    }
}

/// What the handler does while data arrives, to drive pause/resume/cancel from the event loop.
struct Script: Sendable {
    /// Cancel once this many body chunks arrived (0: right after the head).
    var cancelAfterChunks: Int?
    /// Pause after each body chunk and resume after this long.
    var pauseEachChunkFor: TimeAmount?
    /// Pause after the first body chunk only, for this long.
    var pauseAfterFirstChunkFor: TimeAmount?
}

/// Records every call, checking it happens on the event loop given to `start`.
final class RecordingHandler: UpstreamResponseHandler {
    let eventLoop: any EventLoop
    let script: Script
    let done: EventLoopPromise<Recording>
    var transfer: UpstreamTransfer?
    private var recording = Recording()
    private var extraEnds = 0

    init(eventLoop: any EventLoop, script: Script) {
        self.eventLoop = eventLoop
        self.script = script
        done = eventLoop.makePromise()
    }

    private func note(_ call: String) {
        if !eventLoop.inEventLoop { recording.offLoopCalls += 1 }
        recording.calls.append(call)
    }

    func upstreamHead(_ head: UpstreamHead) {
        note("head")
        recording.head = head
        if script.cancelAfterChunks == 0 { transfer?.cancel() }
    }

    func upstreamBody(_ chunk: ByteBuffer, endFollows: Bool) {
        note("body")
        recording.chunks.append(chunk)
        recording.chunkTimes.append(.now())
        if let n = script.cancelAfterChunks, recording.chunks.count >= n { transfer?.cancel() }
        if recording.chunks.count == 1, let wait = script.pauseAfterFirstChunkFor, let transfer {
            transfer.pause()
            eventLoop.scheduleTask(in: wait) { transfer.resume() }
        }
        if let wait = script.pauseEachChunkFor, let transfer {
            transfer.pause()
            eventLoop.scheduleTask(in: wait) { transfer.resume() }
        }
    }

    func upstreamEnd(_ result: Result<UpstreamTiming, UpstreamError>) {
        note("end")
        recording.end = result
        // A second end would be a bug: keep recording to catch it, answer once.
        if recording.calls.filter({ $0 == "end" }).count == 1 {
            // Let any stray call that follows land before the test looks.
            let me = NIOLoopBound(self, eventLoop: eventLoop)
            eventLoop.scheduleTask(in: .milliseconds(20)) {
                me.value.done.succeed(me.value.recording)
            }
        }
    }
}

extension UpstreamClient {
    /// Starts `request` on `loop` (from the loop, as a channel handler would) and
    /// waits for its end.
    func run(_ request: UpstreamRequest, on loop: any EventLoop, script: Script = Script()) async throws -> Recording {
        try await loop.flatSubmit {
            let handler = RecordingHandler(eventLoop: loop, script: script)
            handler.transfer = self.start(request, on: loop, handler: handler)
            return handler.done.futureResult
        }.get()
    }
}

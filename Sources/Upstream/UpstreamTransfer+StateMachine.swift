/// What the owner's event loop may still be told about a transfer. Lives on
/// that event loop; decides what to forward to the handler and which
/// requests to send to the curl thread. Pure: no I/O.
struct DeliveryStateMachine {
    enum State: Equatable {
        case awaitingHead(paused: Bool)
        case streaming(paused: Bool)
        /// `cancel()` was called: nothing but the final `.cancelled` is delivered.
        case cancelled
        case ended
    }

    private(set) var state = State.awaitingHead(paused: false)

    /// Returns whether the head goes to the handler.
    mutating func headArrived() -> Bool {
        switch state {
        case .awaitingHead(let paused):
            state = .streaming(paused: paused)
            return true
        case .streaming:
            assertionFailure("second head for one transfer")
            return false
        case .cancelled, .ended:
            return false
        }
    }

    /// Returns whether a body chunk goes to the handler.
    func bodyArrived() -> Bool {
        switch state {
        case .streaming:
            return true
        case .awaitingHead:
            assertionFailure("body before head")
            return false
        case .cancelled, .ended:
            return false
        }
    }

    /// Returns the result to hand to the handler, or nil if it already had its end.
    mutating func endArrived<T, E>(_ result: Result<T, E>, cancelled: E) -> Result<T, E>? {
        switch state {
        case .awaitingHead, .streaming:
            state = .ended
            return result
        case .cancelled:
            // The transfer may have finished on the curl thread before the
            // cancel reached it; the owner asked to stop, so it hears `.cancelled`.
            state = .ended
            return .failure(cancelled)
        case .ended:
            return nil
        }
    }

    /// Returns whether the curl thread must be asked to abort the transfer.
    mutating func cancel() -> Bool {
        switch state {
        case .awaitingHead, .streaming:
            state = .cancelled
            return true
        case .cancelled, .ended:
            return false
        }
    }

    /// Returns whether the curl thread must be asked to pause receiving.
    mutating func pause() -> Bool { setPaused(true) }

    /// Returns whether the curl thread must be asked to continue receiving.
    mutating func resume() -> Bool { setPaused(false) }

    private mutating func setPaused(_ wanted: Bool) -> Bool {
        switch state {
        case .awaitingHead(let paused) where paused != wanted:
            state = .awaitingHead(paused: wanted)
            return true
        case .streaming(let paused) where paused != wanted:
            state = .streaming(paused: wanted)
            return true
        default:
            return false
        }
    }
}

/// A transfer's life on the curl thread. Pure: the driver performs the
/// curl calls the answers ask for.
struct CurlTransferStateMachine {
    enum Phase: Equatable {
        case created
        /// Waiting for a connection being opened (`ConnectionRamp`): not in curl yet.
        case held(paused: Bool)
        case running(paused: Bool)
        case finished
    }

    private(set) var phase = Phase.created

    /// The transfer waits before joining the multi handle.
    mutating func hold() {
        precondition(phase == .created, "transfer held twice")
        phase = .held(paused: false)
    }

    /// The easy handle was added to the multi handle. Returns whether to pause it at once
    /// (`curl_easy_pause(h, CURLPAUSE_RECV)`): its owner paused it while it was held.
    @discardableResult
    mutating func added() -> Bool {
        switch phase {
        case .created:
            phase = .running(paused: false)
            return false
        case .held(let paused):
            phase = .running(paused: paused)
            return paused
        case .running, .finished:
            preconditionFailure("transfer added twice")
        }
    }

    /// Returns whether to call `curl_easy_pause(h, CURLPAUSE_RECV)`.
    mutating func pause() -> Bool { setPaused(true) }

    /// Returns whether to call `curl_easy_pause(h, CURLPAUSE_CONT)`.
    mutating func resume() -> Bool { setPaused(false) }

    /// A held transfer only remembers it (`added` applies it); a running one asks curl when it
    /// changes something.
    private mutating func setPaused(_ wanted: Bool) -> Bool {
        switch phase {
        case .running(let paused) where paused != wanted:
            phase = .running(paused: wanted)
            return true
        case .held:
            phase = .held(paused: wanted)
            return false
        default:
            return false
        }
    }

    /// Returns whether to remove the handle and report `.cancelled`
    /// (false once curl has finished the transfer: its own end is on the way).
    mutating func cancel() -> Bool { finish() }

    /// curl reported the transfer done. Returns whether to remove the handle
    /// and report its result.
    mutating func completed() -> Bool { finish() }

    private mutating func finish() -> Bool {
        switch phase {
        case .created, .held:
            // Never added (setup failed, shutdown first, or cancelled while held): still owes an end.
            phase = .finished
            return true
        case .running:
            phase = .finished
            return true
        case .finished:
            return false
        }
    }
}

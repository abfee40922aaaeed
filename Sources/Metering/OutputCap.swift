import NIOCore

/// The body a plan's output cap sends upstream, and what the client asked for.
public struct OutputCapRewrite: Sendable {
    /// The body to send: the original buffer itself when nothing changed.
    public var body: ByteBuffer
    /// A peek of `body`, identical to `RequestPeek(body: body)` without reading it again, so
    /// `peek.withIncludeUsage(body)` can follow directly.
    public var peek: RequestPeek
    /// The output cap the client set on this endpoint's fields (the largest if several); nil
    /// when absent or `null`.
    public var requested: Int?
    /// The most output tokens the call can produce once `body` goes upstream: what a
    /// reservation is sized from. 0 for endpoints without output (embeddings, count_tokens).
    public var applied: Int
    /// Whether `body` differs from the original.
    public var changed: Bool
    /// What the cap did to an extended-thinking budget; `.cannotFit`: refuse the call.
    public var thinking: ThinkingUnderCap = .fits
}

extension RequestPeek {
    /// What OpenAI's legacy completions endpoint produces when `max_tokens` is absent.
    public static let completionsDefaultMaxTokens = 16

    /// The top-level fields that bound output on `endpoint`; `inject` is the one added when
    /// the client set none (nil: never add one): on chat, `max_tokens` for an OpenAI-compatible
    /// server, some of which ignore `max_completion_tokens`.
    private static func capFields(_ endpoint: Endpoint, compatibleServer: Bool = false)
        -> (first: CapField?, second: CapField?, inject: CapField?) {
        switch endpoint {
        case .chatCompletions: return (.maxCompletionTokens, .maxTokens, compatibleServer ? .maxTokens : .maxCompletionTokens)
        case .completions: return (.maxTokens, nil, .maxTokens)
        case .responses: return (.maxOutputTokens, nil, .maxOutputTokens)
        case .messages: return (.maxTokens, nil, nil)
        case .embeddings, .countTokens: return (nil, nil, nil)
        }
    }

    /// The output cap the client set in the fields `endpoint` reads; the largest if several.
    public func requestedOutput(on endpoint: Endpoint) -> Int? {
        let fields = Self.capFields(endpoint)
        let a = fields.first.flatMap(value), b = fields.second.flatMap(value)
        guard let a else { return b }
        guard let b else { return a }
        return Swift.max(a, b)
    }

    /// Whether any output field `endpoint` reads asks for more than `cap`: for plans that
    /// refuse instead of clamping. A request setting none does not exceed; `withOutputCap`
    /// then adds the cap.
    public func exceedsCap(_ cap: Int, endpoint: Endpoint) -> Bool {
        (requestedOutput(on: endpoint) ?? 0) > cap
    }

    /// Whether any of `max_tokens`, `max_completion_tokens`, `max_output_tokens` is above
    /// `cap`, whatever the endpoint.
    public func exceedsCap(_ cap: Int) -> Bool {
        (outputCap ?? 0) > cap
    }

    /// Anthropic's least extended-thinking budget.
    public static let thinkingBudgetMinimum = 1_024

    /// What clamping `max_tokens` to `cap` does to an extended-thinking budget. Anthropic refuses
    /// a `thinking.budget_tokens` at or above `max_tokens` (thinking is output) or below 1,024,
    /// except with interleaved thinking (`anthropic-beta: interleaved-thinking-…`), whose budget
    /// spans the turn. When the clamp lowers `max_tokens`, the budget goes down in the proportion
    /// the client gave the two (budget ÷ max_tokens), to no less than 1,024 and below the cap, so
    /// the answer keeps its share; with a cap of 1,024 or less no budget fits.
    public func thinkingUnderCap(_ cap: Int, on endpoint: Endpoint, interleaved: Bool) -> ThinkingUnderCap {
        guard endpoint == .messages, thinkingType == "enabled", !interleaved,
              let budget = thinkingBudget, budget >= Self.thinkingBudgetMinimum,  // else the provider's 400
              let asked = maxTokens, asked > cap else { return .fits }
        guard cap > Self.thinkingBudgetMinimum else { return .cannotFit }
        let lowered = Swift.min(budget, Swift.max(Self.thinkingBudgetMinimum, budget * cap / asked), cap - 1)
        return lowered < budget ? .lowered(to: lowered) : .fits
    }

    /// The body this peek read, with the output bounded by `cap`. `body` must be the exact
    /// bytes the peek was made from; `cap` must be in `0...maxTokensLimit` (plans validate it).
    ///
    /// - chat.completions: `max_completion_tokens` and `max_tokens`, each if present, become
    ///   `min(value, cap)`; with neither, `"max_completion_tokens":cap` is added.
    /// - completions: `max_tokens` likewise. Absent, OpenAI writes at most
    ///   `completionsDefaultMaxTokens` (16), so the body is left alone unless the cap is lower.
    /// - With `compatibleServer` (an OpenAI-compatible server, `openai_compatible`), the limit
    ///   always goes in `max_tokens`, the field they all read: on chat it is added (the cap, or
    ///   a `max_completion_tokens` the client sent, clamped), on completions it is added (Ollama's and
    ///   llama.cpp's default is no limit; vLLM's 16, which the cap raises).
    /// - responses: `max_output_tokens` likewise.
    /// - messages: `max_tokens` is clamped. Anthropic requires it, so when absent the body is
    ///   left alone (the provider refuses it); `applied` is then `cap`.
    /// - embeddings, count_tokens: unchanged, `applied` 0.
    ///
    /// Only top-level fields count. A value at or below the cap (in any notation) is left as
    /// it is; a clamp replaces just the number's bytes with the cap in decimal. An added
    /// member goes right after the opening `{` (or replaces a `null` value of the field, so
    /// the key never appears twice). Every other byte is kept.
    ///
    /// On messages, a clamp of `max_tokens` lowers an extended-thinking budget with it
    /// (`thinkingUnderCap(_:on:interleaved:)`, in `thinking`); the caller refuses the call when
    /// none fits (`.cannotFit`: the body is then clamped, the budget left as it was).
    public func withOutputCap(_ cap: Int, endpoint: Endpoint, body: ByteBuffer,
                              interleavedThinking: Bool = false, compatibleServer: Bool = false) -> OutputCapRewrite {
        precondition((0...Self.maxTokensLimit).contains(cap), "output cap out of range")
        precondition(body.readableBytes == bodyBytes, "withOutputCap needs the body the peek read")
        let fields = Self.capFields(endpoint, compatibleServer: compatibleServer)
        let requested = requestedOutput(on: endpoint)
        var edits: [CapEdit] = []  // at most two; no allocation when nothing changes
        func clamp(_ field: CapField?) {
            guard let field, let v = value(field), v > cap, let range = anchor(field) else { return }
            edits.append(CapEdit(field: field, range: range, value: cap, valueOffset: 0))
        }
        clamp(fields.first)
        clamp(fields.second)
        let thinking = thinkingUnderCap(cap, on: endpoint, interleaved: interleavedThinking)
        if case .lowered(let budget) = thinking, let range = anchors.thinkingBudget {
            edits.append(CapEdit(field: .thinkingBudget, range: range, value: budget, valueOffset: 0))
        }
        func inject(_ field: CapField, _ value: Int) {
            if let null = anchor(field) {
                edits.append(CapEdit(field: field, range: null, value: value, valueOffset: 0))
            } else {
                let at = anchors.objectStart + 1
                let member = "\"\(field.name)\":"
                edits.append(CapEdit(field: field, range: at..<at, value: value,
                                     text: member + String(value) + (anchors.objectIsEmpty ? "" : ","),
                                     valueOffset: member.utf8.count))
            }
        }
        var applied = requested.map { Swift.min($0, cap) } ?? 0
        if requested == nil, fields.first != nil {
            applied = cap
            if endpoint == .completions, !compatibleServer, cap >= Self.completionsDefaultMaxTokens {
                applied = Self.completionsDefaultMaxTokens
            } else if let field = fields.inject {
                inject(field, cap)
            }
        } else if compatibleServer, endpoint == .chatCompletions, maxTokens == nil {
            inject(.maxTokens, applied)  // the client's max_completion_tokens, which it may ignore
        }
        guard !edits.isEmpty else {
            return OutputCapRewrite(body: body, peek: self, requested: requested, applied: applied, changed: false,
                                    thinking: thinking)
        }
        edits.sort { $0.range.lowerBound < $1.range.lowerBound }
        return OutputCapRewrite(body: Self.splice(body, edits), peek: applying(edits),
                                requested: requested, applied: applied, changed: true, thinking: thinking)
    }

    /// `body` with each edit's range replaced by its text; edits sorted, not overlapping.
    private static func splice(_ body: ByteBuffer, _ edits: [CapEdit]) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(body.readableBytes + edits.reduce(0) { $0 + $1.delta })
        let start = body.readerIndex
        var copied = 0
        for edit in edits {
            out.writeImmutableBuffer(body.getSlice(at: start + copied, length: edit.range.lowerBound - copied)!)
            out.writeString(edit.text)
            copied = edit.range.upperBound
        }
        out.writeImmutableBuffer(body.getSlice(at: start + copied, length: body.readableBytes - copied)!)
        return out
    }

    /// This peek moved onto the spliced body: the edited fields hold their new values, offsets shift.
    private func applying(_ edits: [CapEdit]) -> RequestPeek {
        // Where byte `p` of the old body lands: after every edit that ends at or before it.
        func shift(_ p: Int, except skipped: Int? = nil) -> Int {
            var q = p
            for (i, edit) in edits.enumerated() where edit.range.upperBound <= p && i != skipped { q += edit.delta }
            return q
        }
        func shift(_ r: Range<Int>?) -> Range<Int>? { r.map { shift($0.lowerBound)..<shift($0.upperBound) } }
        var out = self
        out.bodyBytes += edits.reduce(0) { $0 + $1.delta }
        out.anchors.streamOptions = shift(anchors.streamOptions)
        out.anchors.includeUsage = shift(anchors.includeUsage)
        out.anchors.maxTokens = shift(anchors.maxTokens)
        out.anchors.maxCompletionTokens = shift(anchors.maxCompletionTokens)
        out.anchors.maxOutputTokens = shift(anchors.maxOutputTokens)
        out.anchors.thinkingBudget = shift(anchors.thinkingBudget)
        out.anchors.model = shift(anchors.model)
        for (i, edit) in edits.enumerated() {
            let valueStart = shift(edit.range.lowerBound, except: i) + edit.valueOffset
            out.set(edit.field, value: edit.value, anchor: valueStart..<valueStart + edit.valueLength)
            if edit.range.isEmpty { out.anchors.objectIsEmpty = false }
        }
        return out
    }

    private func value(_ field: CapField) -> Int? {
        switch field {
        case .maxTokens: return maxTokens
        case .maxCompletionTokens: return maxCompletionTokens
        case .maxOutputTokens: return maxOutputTokens
        case .thinkingBudget: return thinkingBudget
        }
    }

    private func anchor(_ field: CapField) -> Range<Int>? {
        switch field {
        case .maxTokens: return anchors.maxTokens
        case .maxCompletionTokens: return anchors.maxCompletionTokens
        case .maxOutputTokens: return anchors.maxOutputTokens
        case .thinkingBudget: return anchors.thinkingBudget
        }
    }

    private mutating func set(_ field: CapField, value: Int, anchor: Range<Int>) {
        switch field {
        case .maxTokens: maxTokens = value; anchors.maxTokens = anchor
        case .maxCompletionTokens: maxCompletionTokens = value; anchors.maxCompletionTokens = anchor
        case .maxOutputTokens: maxOutputTokens = value; anchors.maxOutputTokens = anchor
        case .thinkingBudget: thinkingBudget = value; anchors.thinkingBudget = anchor
        }
    }
}

/// What a plan's output cap does to a request's extended-thinking budget.
public enum ThinkingUnderCap: Sendable, Hashable {
    /// Nothing to do: no budget, or it stays under the output limit sent.
    case fits
    /// The budget sent upstream instead.
    case lowered(to: Int)
    /// The cap leaves no room for the least budget: Anthropic would refuse the call.
    case cannotFit
}

private enum CapField {
    case maxTokens, maxCompletionTokens, maxOutputTokens, thinkingBudget

    var name: String {
        switch self {
        case .maxTokens: return "max_tokens"
        case .maxCompletionTokens: return "max_completion_tokens"
        case .maxOutputTokens: return "max_output_tokens"
        case .thinkingBudget: return "budget_tokens"
        }
    }
}

/// One splice: `range` of the body becomes `text`, whose digits (`value`) sit at `valueOffset`.
private struct CapEdit {
    var field: CapField
    var range: Range<Int>
    var value: Int
    var text: String
    var valueOffset: Int
    var valueLength: Int

    init(field: CapField, range: Range<Int>, value: Int, text: String? = nil, valueOffset: Int) {
        let digits = String(value)
        self.field = field
        self.range = range
        self.value = value
        self.text = text ?? digits
        self.valueOffset = valueOffset
        self.valueLength = digits.utf8.count
    }

    var delta: Int { text.utf8.count - range.count }
}

extension Endpoint {
    /// Output reserved for a call that names no output limit and has no plan cap: the worst case
    /// is otherwise unbounded. Settlement charges the real output either way; give plans a
    /// `max_output_tokens` to make the quota bound hard.
    public static let defaultOutputReserve = 4_096

    /// The output tokens a call's reservation holds (its worst case), given the output limit it
    /// goes upstream with (`applied`, nil: none), which bounds each of the `answers` it has
    /// generated (`RequestPeek.generatedAnswers`): none on endpoints without output.
    public func outputReserve(applied: Int?, answers: Int = 1) -> Int {
        switch self {
        case .embeddings, .countTokens: return 0
        case .chatCompletions, .completions, .responses, .messages:
            let (total, overflow) = (applied ?? Self.defaultOutputReserve).multipliedReportingOverflow(by: Swift.max(1, answers))
            return overflow ? .max / 2 : total
        }
    }
}

import Ledger
import Metering
import Policy

/// Builds the ledger row of a call from the plain values the stages produced.
enum CallRecord {
    /// The row of an admitted call before settlement; outcome and usage are filled in at the end.
    /// Its id is the call's own, made once with its request line (its journal marker and its row).
    static func entry(for line: RequestLine, admission: Admission) -> LedgerEntry {
        var entry = base(line, principal: admission.principal, payer: admission.payer)
        entry.outputCapRequested = admission.outputCapRequested
        entry.outputCapApplied = admission.outputCapApplied
        entry.provider = admission.provider.name
        entry.modelRequested = admission.model
        entry.stream = admission.stream
        return entry
    }

    /// The row of a call the gateway answered itself (auth, bad input, unknown model, a limit…),
    /// with what was resolved before the refusal: who pays (user, team, plan) once the caller is
    /// known, the provider once the model is routed, and with `admission` (a limit's refusal)
    /// what else it had decided; without it, the output limit and the stream the request asked
    /// for, if read.
    static func refused(_ line: RequestLine, principal: Principal?, payer: Payer?, model: String?,
                        provider: Provider?, refusal: Refusal, admission: Admission? = nil,
                        outputCapRequested: Int? = nil, stream: Bool = false) -> LedgerEntry {
        var entry = base(line, principal: principal, payer: payer)
        entry.provider = provider?.name
        entry.outputCapRequested = admission?.outputCapRequested ?? outputCapRequested
        entry.stream = admission?.stream ?? stream
        entry.outputCapApplied = admission?.outputCapApplied
        entry.modelRequested = model
        entry.status = refusal.status
        entry.outcome = refusal.outcome
        entry.errorMessage = refusal.message
        return entry
    }

    /// The row of a repeat answered from the idempotency store: no tokens, no cost, its payer's.
    static func replayed(_ line: RequestLine, principal: Principal, payer: Payer, status: Int,
                         original: String) -> LedgerEntry {
        var entry = base(line, principal: principal, payer: payer)
        entry.outcome = .replayed
        entry.status = status
        entry.errorMessage = "replay of request \(original) (Idempotency-Key)"
        return entry
    }

    /// Replaces the row's usage and cost with what was metered, priced exactly.
    static func settle(_ entry: inout LedgerEntry, usage: Usage?, price: ModelPrice?) {
        guard let usage else {
            entry.usage = .zero
            entry.usageSource = .none
            entry.cost = .zero
            return
        }
        entry.usage = usage
        entry.usageSource = .provider
        entry.price = price
        if let price {
            if let cost = price.cost(of: usage) {
                entry.cost = cost
            } else {
                entry.cost = .zero
                entry.errorMessage = "cost overflow: usage \(usage) at price \(price.id)"
            }
        } else {
            entry.cost = .zero
        }
    }

    /// An answer without usable output usage — a stream that broke off (client gone, deadline,
    /// shutdown) after text reached the client, or a provider that reported none, or nonsense —
    /// is billed for the text sent (`OutputEstimate`), with the provider's input count if it sent
    /// one (Anthropic does, first) or the prompt estimate.
    ///
    /// `promptAlone`: the provider had the request and was answering it (or may have been), so
    /// with no usage and no text at all it is still billed the prompt estimate: a call cut before
    /// its first token (an OpenAI stream reports nothing until its end; a non-streamed call runs
    /// on at the provider after the client left) is not free.
    ///
    /// `kinds`: the estimate's audio (`TokenKinds.audioInputTokens`) is audio input when the
    /// provider counted no input; sound the answer streamed is audio output.
    /// The searches the stream showed finished are billed too (`MeterResult.searchesSeen`).
    static func estimateMissingUsage(_ entry: inout LedgerEntry, metered: MeterResult, promptEstimate: Int,
                                     kinds: TokenKinds = TokenKinds(), price: ModelPrice?, promptAlone: Bool = false) {
        guard (metered.usage?.outputTokens ?? 0) == 0 else { return }
        guard metered.estimatedOutputTokens > 0 || (promptAlone && metered.usage == nil) else { return }
        var usage = metered.usage
            ?? Usage(inputTokens: promptEstimate, webSearches: metered.searchesSeen.web,
                     audioInputTokens: min(kinds.audioInputTokens, promptEstimate), fileSearches: metered.searchesSeen.file)
        usage.outputTokens = metered.estimatedOutputTokens
        usage.audioOutputTokens = metered.estimatedAudioOutputTokens
        charge(&entry, estimated: usage, price: price)
    }

    /// A failed stream that sent no text: the searches it showed finished were made, so they are
    /// billed, alone (`usage_source = estimated`: no usage reported them).
    static func billSearchesAlone(_ entry: inout LedgerEntry, _ searches: SearchCalls, price: ModelPrice?) {
        guard searches.web > 0 || searches.file > 0 else { return }
        charge(&entry, estimated: Usage(webSearches: searches.web, fileSearches: searches.file), price: price)
    }

    /// The row's usage is the gateway's estimate, charged at `price`.
    private static func charge(_ entry: inout LedgerEntry, estimated usage: Usage, price: ModelPrice?) {
        entry.usage = usage
        entry.usageSource = .estimated
        entry.price = price
        entry.cost = price?.cost(of: usage) ?? .zero
    }

    /// Billed to `payer` (user, team, plan) when known, else to the key's own user and team.
    private static func base(_ line: RequestLine, principal: Principal?, payer: Payer?) -> LedgerEntry {
        var entry = LedgerEntry(
            id: line.callID,
            requestId: line.requestID,
            startedAt: line.startedAt,
            endedAt: line.startedAt,
            keyId: principal?.keyId,
            user: principal?.user,
            team: principal?.team,
            dialect: line.dialect,
            route: line.route,
            stream: false,
            status: 0,
            outcome: .ok)
        if let payer {
            entry.user = payer.user
            entry.team = payer.team
            entry.plan = payer.plan.planName
        }
        return entry
    }
}

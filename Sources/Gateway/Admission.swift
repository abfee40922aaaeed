import Foundation
import Ledger
import Metering
import NIOCore
import Policy
import PostgresLedger

/// What every call has, even one refused before its route is known: for error bodies and rows.
struct RequestLine {
    /// The id of the call's row (every row the request makes uses it), made with the line.
    var callID: String
    /// `x-request-id`: the client's, or `req_` and `callID` (see `CallIdentity.requestID`).
    var requestID: String
    var startedAt: Int64
    var dialect: Dialect
    /// The endpoint's name (`chat.completions`), or the raw path of an unknown route.
    var route: String
}

/// A proxied call as the gateway received it: plain values, no channel.
struct CallRequest {
    let endpoint: Endpoint
    /// Its ids and start, as every row of the request has them (the line is made with `endpoint`).
    let line: RequestLine
    /// The secret the caller presented (`Authorization: Bearer` or `x-api-key`).
    var presentedSecret: String?
    /// Client headers that are forwarded (protocol versions and betas).
    var forwardedHeaders: [(String, String)]
    /// `x-tokenctl-user`: the end user a service key calls for (honoured only for such keys).
    var declaredEndUser: String?
    /// `Idempotency-Key`: a repeat of a completed call gets its answer again (`IdempotencyStore`).
    var idempotencyKey: String? = nil
    var body: ByteBuffer

    var callID: String { line.callID }
    var requestID: String { line.requestID }
    var startedAt: Int64 { line.startedAt }
}

/// The decision to let a call go upstream, with everything forwarding and settlement need.
/// A class: a call reads it at every step from admission to its ledger row, and copying a
/// struct of this many references retained and released each of them every time.
final class Admission: Sendable {
    let principal: Principal
    let payer: Payer
    /// Tokens the prompt is estimated at (rate limits and quota reservations count it).
    let promptEstimate: Int
    /// The output limit the client asked for, and the one sent upstream (clamped or injected).
    let outputCapRequested: Int?
    let outputCapApplied: Int?
    /// Answers generated, each up to `outputCapApplied` (`n`, `best_of`): the reservation counts all.
    let generatedAnswers: Int
    /// The dearer prices its tokens may be charged at: cache writes, audio (`TokenKinds`).
    let tokenKinds: TokenKinds
    /// The longest the call may take, retries and fallbacks included (`PolicySet.serving(model:)`):
    /// its budget hold is kept at least that long.
    let longestCallMicros: Int64
    let model: String
    let provider: Provider
    /// The model's prices: the standard one, and those of a tier or a long prompt.
    let pricing: Pricing
    /// The priced service tier the request asks for (`ServiceTier`), nil for the standard one.
    let requestedTier: String?
    /// Where the request asks the call to run (Anthropic's `inference_geo`; `InferenceGeo`).
    let requestedGeo: String?
    let stream: Bool
    /// The request gives the image generation tool, whose images no price covers (admitted
    /// only while `unpriced_models` is `allow`; its rows say so).
    let imageGenerationTool: Bool
    /// The body sent upstream: the client's, or with `stream_options.include_usage` injected.
    let upstreamBody: ByteBuffer
    /// The proxy injected the usage chunk, so it must strip it before the client sees it.
    let stripInjectedUsage: Bool

    init(principal: Principal, payer: Payer, promptEstimate: Int, outputCapRequested: Int?,
         outputCapApplied: Int?, generatedAnswers: Int, tokenKinds: TokenKinds = TokenKinds(), longestCallMicros: Int64 = 0,
         model: String, provider: Provider, pricing: Pricing, requestedTier: String? = nil,
         requestedGeo: String? = nil, stream: Bool,
         imageGenerationTool: Bool = false, upstreamBody: ByteBuffer, stripInjectedUsage: Bool) {
        self.principal = principal
        self.payer = payer
        self.promptEstimate = promptEstimate
        self.outputCapRequested = outputCapRequested
        self.outputCapApplied = outputCapApplied
        self.generatedAnswers = generatedAnswers
        self.tokenKinds = tokenKinds
        self.longestCallMicros = longestCallMicros
        self.model = model
        self.provider = provider
        self.pricing = pricing
        self.requestedTier = requestedTier
        self.requestedGeo = requestedGeo
        self.stream = stream
        self.imageGenerationTool = imageGenerationTool
        self.upstreamBody = upstreamBody
        self.stripInjectedUsage = stripInjectedUsage
    }

    /// The model's standard price, with the search fee of the tools the request gives.
    var price: ModelPrice? { pricing.standard?.withSearchFee(for: tokenKinds) }

    /// The call's worst case, what its quota reservation holds: the prompt estimate plus its
    /// output limit for each answer, at the price of the tier it asks for and of its prompt's
    /// size (`ModelPrice.worstCase`).
    func worstCase(on endpoint: Endpoint) -> (cost: Money, tokens: Int) {
        let (output, price) = reserved(on: endpoint)
        let cost = price?.worstCase(inputTokens: promptEstimate, outputTokens: output, kinds: tokenKinds) ?? .zero
        return (cost, promptEstimate + output)
    }

    /// The output the worst case holds, and the price it holds it at: the US-only price where
    /// the model has one, unless the request asks Anthropic for the global geo (a workspace's
    /// default may send the call there unasked).
    private func reserved(on endpoint: Endpoint) -> (output: Int, price: ModelPrice?) {
        let usOnly = provider.dialect == .anthropic && InferenceGeo.mayRunInUSOnly(requested: requestedGeo)
        return (endpoint.outputReserve(applied: outputCapApplied, answers: generatedAnswers),
                pricing.price(tier: requestedTier, promptTokens: promptEstimate, usOnly: usOnly).price)
    }

    /// What the worst case counts, for a refusal's message: "a prompt of about 120 tokens, up to
    /// 1000 output tokens as audio and 5 web searches at gpt-audio@2025-08-28's prices" (a user
    /// sending a short prompt otherwise cannot tell why a call needs dollars). The price's id
    /// names a tier's, a long prompt's or a US-only price; the dearer kinds are named when they
    /// were priced so.
    func worstCaseParts(on endpoint: Endpoint) -> String {
        let (output, price) = reserved(on: endpoint)
        var prompt = "a prompt of about \(promptEstimate) tokens"
        if tokenKinds.audioInputTokens > 0 { prompt += " (\(min(tokenKinds.audioInputTokens, promptEstimate)) of them audio)" }
        if tokenKinds.writesPromptCache, let price, max(price.cacheWrite, price.cacheWrite1h) > price.input {
            prompt += " priced as cache writes"
        }
        var parts = [prompt]
        if output > 0 {
            let audio = tokenKinds.audioAnswer && price.map { ($0.audioOutput ?? $0.output) > $0.output } == true
            parts.append("up to \(output) output tokens" + (audio ? " as audio" : ""))
        }
        let searches = price?.reservedSearches(tokenKinds) ?? (web: tokenKinds.webSearches, file: tokenKinds.fileSearches)
        for (count, kind) in [(searches.web, "web"), (searches.file, "file")] where count > 0 {
            parts.append("\(count) \(kind) search" + (count == 1 ? "" : "es"))
        }
        let listed = parts.count == 1 ? parts[0] : parts.dropLast().joined(separator: ", ") + " and " + parts[parts.count - 1]
        return listed + (price.map { " at \($0.id)'s prices" } ?? "")
    }

    /// The price the call is charged: of the tier the provider says served it (else the one
    /// asked for), of its prompt's size (the provider's count, else the estimate) and of where it
    /// ran (the answer's `inference_geo`, else the request's). With the note for the row when the
    /// model has no such price (charged at the standard one, or the global one).
    func settlementPrice(servedTier: String??, servedGeo: String?, usage: Usage?) -> (price: ModelPrice?, note: String?) {
        let tier = servedTier ?? requestedTier
        let (priced, tierPriced, usOnlyPriced) = pricing.price(
            tier: tier, promptTokens: usage?.totalInputTokens ?? promptEstimate,
            usOnly: InferenceGeo.runsInUSOnly(served: servedGeo, requested: requestedGeo))
        let price = priced?.withSearchFee(for: tokenKinds)
        var notes: [String] = []
        if !tierPriced, let tier {
            notes.append("served at service tier '\(tier)', which prices.yaml does not price for '\(model)': charged at the standard price")
        }
        if !usOnlyPriced {
            notes.append("run in the US only (inference_geo), which prices.yaml does not price for '\(model)': charged at the global price")
        }
        if let price, let usage, usage.audioInputTokens > 0 && price.audioInput == nil
            || usage.audioOutputTokens > 0 && price.audioOutput == nil {
            notes.append("audio tokens, which prices.yaml does not price for '\(model)': charged at the text price")
        }
        if imageGenerationTool {
            notes.append("the image_generation tool's images are billed apart from the usage the provider reports: not charged here")
        }
        return (price, notes.isEmpty ? nil : notes.joined(separator: "; "))
    }

    /// The same decision for a fallback model: charged to the first model's `payer`, with its
    /// prompt estimate (the same prompt: the body differs only by the model's name).
    func fallback(paidBy payer: Payer, promptEstimate: Int) -> Admission {
        Admission(principal: principal, payer: payer, promptEstimate: promptEstimate,
                  outputCapRequested: outputCapRequested, outputCapApplied: outputCapApplied,
                  generatedAnswers: generatedAnswers, tokenKinds: tokenKinds,
                  longestCallMicros: longestCallMicros, model: model,
                  provider: provider, pricing: pricing, requestedTier: requestedTier,
                  requestedGeo: requestedGeo, stream: stream,
                  imageGenerationTool: imageGenerationTool, upstreamBody: upstreamBody,
                  stripInjectedUsage: stripInjectedUsage)
    }
}

/// A call refused at admission, with what was resolved before the refusal: its row records who
/// pays (user, team, plan) and the provider, as a refusal after admission's does.
struct AdmissionRefusal: Error {
    var refusal: Refusal
    var payer: Payer
    var model: String? = nil
    var provider: Provider? = nil
    /// The output limit the call asked for, once read (for its row).
    var outputCapRequested: Int? = nil
    /// The request asked for a stream, once read (for its row).
    var stream = false
}

/// Identify → admit, before any byte goes upstream. Pure: reads the policy and the request only.
enum Admit {
    static func identify(secret: String?, dialect: Dialect, in principals: PrincipalDirectory) -> Result<Principal, Refusal> {
        guard let secret, !secret.isEmpty else {
            return .failure(Refusal(.unauthenticated, missingKeyMessage(dialect)))
        }
        guard let principal = principals.principal(forSecret: secret) else {
            return .failure(Refusal(.unauthenticated, "Invalid API key: the key is unknown or was revoked."))
        }
        return .success(principal)
    }

    static func admit(_ request: CallRequest, principal: Principal, policy: PolicySet,
                      today: Day) -> Result<Admission, AdmissionRefusal> {
        let peek: RequestPeek
        do {
            peek = try RequestPeek(body: request.body)
        } catch {
            // The row still names the model, and the stream asked for, when another field was the problem.
            let (model, stream) = RequestPeek.modelAndStream(in: request.body)
            return .failure(AdmissionRefusal(refusal: badBody(error),
                                             payer: payer(of: principal, request: request, peek: nil, plans: policy.plans),
                                             model: model, stream: stream))
        }
        let payer = payer(of: principal, request: request, peek: peek, plans: policy.plans)
        let model: String
        do {
            model = try peek.requireModel()
        } catch {
            return .failure(AdmissionRefusal(refusal: badBody(error), payer: payer, stream: peek.stream))
        }
        func refused(_ refusal: Refusal, provider: Provider? = nil, outputCapRequested: Int? = nil) -> Result<Admission, AdmissionRefusal> {
            .failure(AdmissionRefusal(refusal: refusal, payer: payer, model: model, provider: provider,
                                      outputCapRequested: outputCapRequested, stream: peek.stream))
        }
        guard let (provider, longestCall) = policy.serving(model: model) else {
            return refused(Refusal(.unknownModel,
                "The model '\(model)' is not routed by this gateway's policy (see providers.yaml).",
                field: "model"))
        }
        guard provider.dialect == request.endpoint.dialect else {
            return refused(Refusal(.badRequest,
                "The model '\(model)' is served in the \(provider.dialect.rawValue) dialect; call it through the \(provider.dialect.rawValue) API, not \(request.endpoint.proxyPath).",
                field: "model"), provider: provider)
        }
        let pricing = policy.prices.pricing(for: model, on: today)
        if pricing.standard == nil, request.endpoint != .countTokens, policy.gateway.unpricedModels == .refuse {
            return refused(Refusal(.unpriced,
                "The model '\(model)' has no price in prices.yaml, so its cost cannot be accounted; the gateway refuses unpriced models.",
                field: "model"), provider: provider)
        }
        let promptEstimate = PromptEstimate.tokens(peek)
        let tier = ServiceTier.requested(serviceTier: peek.serviceTier, speed: peek.speed,
                                         dialect: request.endpoint.dialect)
        let geo = request.endpoint.dialect == .anthropic ? peek.inferenceGeo : nil
        let priced = pricing.price(tier: tier, promptTokens: promptEstimate, usOnly: geo == InferenceGeo.us)
        if let tier, !priced.tierPriced, request.endpoint != .countTokens, policy.gateway.unpricedModels == .refuse {
            let field = request.endpoint.dialect == .anthropic ? "speed" : "service_tier"
            return refused(Refusal(.unpriced,
                "The model '\(model)' has no price for the service tier '\(tier)' in prices.yaml (an entry with tier: \(tier)), so its cost cannot be accounted; the gateway refuses unpriced models. Call it without \(field).",
                field: field), provider: provider)
        }
        if !priced.usOnlyPriced, request.endpoint != .countTokens, policy.gateway.unpricedModels == .refuse {
            return refused(Refusal(.unpriced,
                "The model '\(model)' has no price for calls run in the US only in prices.yaml (us_only on its entry), so their cost cannot be accounted; the gateway refuses unpriced models. Call it without inference_geo, or with inference_geo: global.",
                field: "inference_geo"), provider: provider)
        }
        if peek.imageGenerationTool, policy.gateway.unpricedModels == .refuse {
            return refused(Refusal(.unpriced,
                "The image_generation tool's images are billed apart from the usage the provider reports (per image, by the image model the tool picks), so their cost cannot be accounted; the gateway refuses unpriced tools. Call without that tool.",
                field: "tools"), provider: provider)
        }
        if provider.apiKeyEnv != nil, provider.apiKey == nil {
            return refused(Refusal(.providerKeyMissing,
                "The gateway has no key for provider '\(provider.name)': set \(provider.apiKeyEnv ?? "") where tokenctl runs."),
                provider: provider)
        }
        guard payer.plan.allows(model: model) else {
            return refused(Refusal(.forbidden,
                "The model '\(model)' is not allowed on plan '\(payer.plan.planName)' (see plans.yaml).", field: "model"),
                provider: provider)
        }

        // The plan's output cap: clamp (or inject) the output limit, or refuse if the plan says so.
        var peeked = peek
        var body = request.body
        var applied = peek.requestedOutput(on: request.endpoint)
        let requested = applied
        if let cap = payer.plan.outputCap {
            if cap.onOver == .reject, peek.exceedsCap(cap.maxTokens, endpoint: request.endpoint) {
                return refused(Refusal(.outputOverCap,
                    "This request asks for \(requested ?? 0) output tokens; plan '\(payer.plan.planName)' allows at most \(cap.maxTokens).",
                    field: outputField(request.endpoint, peek: peek)), provider: provider, outputCapRequested: requested)
            }
            let rewrite = peek.withOutputCap(cap.maxTokens, endpoint: request.endpoint, body: body)
            peeked = rewrite.peek
            body = rewrite.body
            applied = rewrite.applied
        }

        // OpenAI streams report usage only when asked: ask, and strip the answer later.
        let strip = peeked.stream && peeked.needsIncludeUsage
            && (request.endpoint == .chatCompletions || request.endpoint == .completions)
        if strip { body = peeked.withIncludeUsage(body) }
        return .success(Admission(principal: principal, payer: payer, promptEstimate: promptEstimate,
                                  outputCapRequested: requested, outputCapApplied: applied,
                                  generatedAnswers: peek.generatedAnswers(on: request.endpoint),
                                  tokenKinds: TokenKinds(
                                      // Only Anthropic's usage bills cache writes apart (OpenAI's counts them as input).
                                      writesPromptCache: peek.asksPromptCache && request.endpoint == .messages,
                                      audioInputTokens: PromptEstimate.audioTokens(peek),
                                      audioAnswer: peek.asksAudioAnswer && request.endpoint != .countTokens,
                                      webSearches: peek.reservedWebSearches(on: request.endpoint),
                                      fileSearches: peek.reservedFileSearches(on: request.endpoint),
                                      previewWebSearch: peek.webSearchPreviewTool,
                                      currentWebSearch: peek.webSearchCurrentTool,
                                      sharedToolCalls: peek.sharedToolCallLimit(on: request.endpoint)),
                                  longestCallMicros: longestCall, model: model, provider: provider,
                                  pricing: pricing, requestedTier: tier, requestedGeo: geo, stream: peek.stream,
                                  imageGenerationTool: peek.imageGenerationTool,
                                  upstreamBody: body, stripInjectedUsage: strip))
    }

    /// The counting checks, in the policy's order, once the call is otherwise admissible:
    /// concurrency, rate limits, the spend-rate breaker, then the quota reservation of the worst
    /// case. What one check took is given back when a later one refuses. The budget periods are
    /// those containing `startedAt`, the call's ledger time, as with shared budgets (below) and
    /// as the start-up rebuild and the charge of unbudgeted scopes count it.
    static func enforce(_ admission: Admission, endpoint: Endpoint, policy: PolicySet, enforcer: Enforcer,
                        startedAt: Int64, now: Int64) -> Result<Hold, Refusal> {
        let local: LocalLimits
        switch takeLocalLimits(admission, endpoint: endpoint, policy: policy, enforcer: enforcer, now: now) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let taken): local = taken
        }
        let plan = admission.payer.plan
        guard !plan.budgets.isEmpty else { return .success(local.hold(quota: nil)) }
        switch enforcer.quotas.reserve(budgets: plan.budgets, cost: local.worstCase, tokens: local.estimatedTokens,
                                       now: startedAt, holdAtLeast: admission.longestCallMicros,
                                       timeZone: local.timeZone) {
        case .failure(let refusal):
            local.giveBack(to: enforcer, now: now)
            return .failure(quotaRefusal(refusal, admission, endpoint))
        case .success(let held):
            return .success(local.hold(quota: .local(held)))
        }
    }

    /// `enforce` with budgets shared by the replicas (PostgreSQL): the same local checks, then
    /// the reservation in `shared` under the call's ledger id, answered on `loop`. A refusal is
    /// the same as the single-node one; an unreachable database refuses the call (fail closed).
    /// The budget periods are those containing `startedAt`, the call's ledger time, so that the
    /// counters and the ledger's sums agree on which period a call near a boundary belongs to.
    static func enforce(_ admission: Admission, endpoint: Endpoint, policy: PolicySet, enforcer: Enforcer,
                        shared: SharedQuotaBook, callID: String, startedAt: Int64, now: Int64,
                        on loop: any EventLoop) -> EventLoopFuture<Result<Hold, Refusal>> {
        let local: LocalLimits
        switch takeLocalLimits(admission, endpoint: endpoint, policy: policy, enforcer: enforcer, now: now) {
        case .failure(let refusal): return loop.makeSucceededFuture(.failure(refusal))
        case .success(let taken): local = taken
        }
        let plan = admission.payer.plan
        guard !plan.budgets.isEmpty else { return loop.makeSucceededFuture(.success(local.hold(quota: nil))) }
        return shared.reserve(callID: callID, budgets: plan.budgets, cost: local.worstCase, tokens: local.estimatedTokens,
                              now: startedAt, holdAtLeast: admission.longestCallMicros,
                              timeZone: policy.plans.timeZone, on: loop)
            .map { result -> Result<Hold, Refusal> in
                switch result {
                case .failure(let refusal):
                    local.giveBack(to: enforcer, now: now)
                    return .failure(quotaRefusal(refusal, admission, endpoint))
                case .success(let held):
                    return .success(local.hold(quota: .shared(held)))
                }
            }
            .recover { _ in
                // The book logs why (PostgreSQL's errors are not the caller's business).
                local.giveBack(to: enforcer, now: now)
                return .failure(Refusal(.quotaStateUnavailable,
                    "The gateway cannot reach its shared budget state (PostgreSQL); it admits no call until it can. Retry shortly.",
                    headers: [("retry-after", "5")]))
            }
    }

    private static func quotaRefusal(_ refusal: QuotaRefusal, _ admission: Admission, _ endpoint: Endpoint) -> Refusal {
        Refusal(.quotaExhausted, "Quota exhausted: \(refusal). This call's worst case counts \(admission.worstCaseParts(on: endpoint)).")
    }

    /// Concurrency, rate limits and the spend-rate breaker: the checks every replica makes alone.
    private static func takeLocalLimits(_ admission: Admission, endpoint: Endpoint, policy: PolicySet,
                                        enforcer: Enforcer, now: Int64) -> Result<LocalLimits, Refusal> {
        let payer = admission.payer
        let plan = payer.plan
        // The user's key, for both the concurrency gate and the rate counters.
        let userKey = "user:" + payer.user
        guard enforcer.concurrency.tryAcquire(userKey, limit: plan.rate.maxConcurrent) else {
            return .failure(Refusal(.tooManyConcurrent,
                "Too many calls in flight for \(payer.user): plan '\(plan.planName)' allows \(plan.rate.maxConcurrent ?? 0) at a time.",
                headers: LimitHeaders.retryAfter(1_000_000)))
        }
        let (worstCase, estimated) = admission.worstCase(on: endpoint)
        // The payer's limits hold per user and per key at once: a user's keys share the user's
        // allowance, and one key (a service key naming many end users) cannot exceed it either.
        let keyRateKey = "key:" + admission.principal.keyId
        let rate: RateStatus
        switch enforcer.rates.admit(userKey, limits: plan.rate, and: keyRateKey, limits: plan.rate,
                                    tokens: estimated, now: now) {
        case .limited(let status, let which, let retryAfter):
            enforcer.concurrency.release(userKey)
            let limit = which == .requests ? "\(plan.rate.requestsPerMinute ?? 0) requests" : "\(plan.rate.tokensPerMinute ?? 0) tokens"
            return .failure(Refusal(.rateLimited(which),
                "Rate limit reached for \(payer.user) on plan '\(plan.planName)': \(limit) per minute. Retry after \(LimitHeaders.duration(retryAfter)).",
                headers: LimitHeaders.retryAfter(retryAfter) + LimitHeaders.rate(status)))
        case .allowed(let status):
            rate = status
        }
        let local = LocalLimits(payer: payer, concurrencyKey: userKey, rateKeys: [userKey, keyRateKey],
                                estimatedTokens: estimated, worstCase: worstCase, rate: rate,
                                timeZone: enforcer.budgetTimeZone(policy))
        let breaker = enforcer.breaker.isTripped(limitPerHour: policy.plans.orgSpendRatePerHour, now: now)
        if breaker.tripped {
            local.giveBack(to: enforcer, now: now)
            return .failure(Refusal(.spendRateTripped,
                "The organisation's spend rate is over its limit of \((policy.plans.orgSpendRatePerHour ?? .zero).dollarsText) per hour; calls resume as it falls, in about \(LimitHeaders.duration(breaker.retryAfterMicros)) at the current spend.",
                headers: LimitHeaders.retryAfter(breaker.retryAfterMicros)))
        }
        return .success(local)
    }

    /// Who pays: the key's user, or the end user a key allowed to attribute names (header
    /// `x-tokenctl-user`, OpenAI `user`, Anthropic `metadata.user_id`), under the key's team.
    /// Without `peek` (a body that does not parse), the header alone can name one. A name reports
    /// use for rows of their own (`(none)`, `(others)`) is not one: the key's user pays.
    static func payer(of principal: Principal, request: CallRequest, peek: RequestPeek?, plans: PlanBook) -> Payer {
        var user = principal.user
        if plans.mayAttributeEndUsers(keyUser: principal.user),
           let named = (request.declaredEndUser ?? peek?.user ?? peek?.metadataUserID).map({ String($0.prefix(128)) }),
           !named.isEmpty, !ReportDimension.isReservedLabel(named) {
            user = named
        }
        return Payer(user: user, team: principal.team, plans: plans)
    }

    private static func badBody(_ error: RequestPeekError) -> Refusal {
        Refusal(.badRequest, "Invalid request body: \(error.message).", field: error.field)
    }

    /// The field that asked for too much: on chat, the one of `max_completion_tokens` and
    /// `max_tokens` holding the larger value (the one the client sent, when it sent one).
    private static func outputField(_ endpoint: Endpoint, peek: RequestPeek) -> String {
        switch endpoint {
        case .responses: return "max_output_tokens"
        case .chatCompletions:
            return (peek.maxTokens ?? -1) > (peek.maxCompletionTokens ?? -1) ? "max_tokens" : "max_completion_tokens"
        default: return "max_tokens"
        }
    }

    private static func missingKeyMessage(_ dialect: Dialect) -> String {
        switch dialect {
        case .openai: return "You didn't provide an API key: send it as 'Authorization: Bearer <key>'."
        case .anthropic: return "x-api-key header is required."
        }
    }
}

/// What the local checks took (a concurrency slot, the rate meters' estimate), before the quota
/// step; given back if that step refuses.
private struct LocalLimits: Sendable {
    var payer: Payer
    var concurrencyKey: String
    var rateKeys: [String]
    var estimatedTokens: Int
    /// The call's worst-case cost, which the quota step reserves.
    var worstCase: Money
    var rate: RateStatus
    var timeZone: TimeZone

    func giveBack(to enforcer: Enforcer, now: Int64) {
        for key in rateKeys {
            enforcer.rates.giveBack(key, limits: payer.plan.rate, estimatedTokens: estimatedTokens, now: now)
        }
        enforcer.concurrency.release(concurrencyKey)
    }

    func hold(quota: QuotaHold?) -> Hold {
        Hold(payer: payer, concurrencyKey: concurrencyKey, rateKeys: rateKeys, estimatedTokens: estimatedTokens,
             quota: quota, rate: rate, timeZone: timeZone)
    }
}

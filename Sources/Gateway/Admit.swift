import Foundation
import Ledger
import Metering
import NIOCore
import Policy

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

    /// " Did you mean 'gpt-4o-mini'?" when a listed model is one or two typos away, else "".
    static func didYouMean(_ model: String, _ policy: PolicySet) -> String {
        policy.suggestion(for: model).map { " Did you mean '\($0)'?" } ?? ""
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
                "The model '\(model)' is not routed by this gateway's policy (see providers.yaml)." + didYouMean(model, policy),
                field: "model"))
        }
        guard provider.dialect == request.endpoint.dialect else {
            return refused(Refusal(.badRequest,
                "The model '\(model)' is served in the \(provider.dialect.rawValue) dialect; call it through the \(provider.dialect.rawValue) API, not \(request.endpoint.proxyPath).",
                field: "model"), provider: provider)
        }
        let pricing = policy.prices.pricing(for: model, on: today)
        if pricing.standard == nil, request.endpoint != .countTokens, policy.gateway.unpricedModels == .refuse {
            // Priced from a later day only: say so, not that prices.yaml lacks it.
            let missing = policy.prices.firstPriced(model).map { "no price in effect today (\(today), UTC) in prices.yaml: its first is from \($0)" }
                ?? "no price in prices.yaml"
            return refused(Refusal(.unpriced,
                "The model '\(model)' has \(missing), so its cost cannot be accounted; the gateway refuses unpriced models." + didYouMean(model, policy),
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
            // Name the list that refused: the user's own `models` replaces their plan's.
            let list = payer.plan.modelsFromUser ? "for user '\(payer.user)' (users.\(payer.user).models in plans.yaml)"
                              : "on plan '\(payer.plan.planName)' (see plans.yaml)"
            return refused(Refusal(.forbidden, "The model '\(model)' is not allowed \(list).", field: "model"),
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
            let rewrite = peek.withOutputCap(cap.maxTokens, endpoint: request.endpoint, body: body,
                                             interleavedThinking: request.endpoint == .messages
                                                 && request.asksInterleavedThinking(at: provider),
                                             compatibleServer: provider.openAICompatible)
            if rewrite.thinking == .cannotFit {
                return refused(Refusal(.outputOverCap,
                    "This request asks for extended thinking, whose thinking.budget_tokens must be at least \(RequestPeek.thinkingBudgetMinimum) and below max_tokens; plan '\(payer.plan.planName)' allows at most \(cap.maxTokens) output tokens, which leaves no room for it. Call without thinking, or on a plan with a larger max_output_tokens.",
                    field: "thinking.budget_tokens"), provider: provider, outputCapRequested: requested)
            }
            peeked = rewrite.peek
            body = rewrite.body
            applied = rewrite.applied
        } else if provider.openAICompatible, let asked = requested {
            // No plan cap, but the reservation counts the client's own limit, which such a server
            // may ignore (a chat's max_completion_tokens): the rewrite with that limit as the cap
            // puts it in max_tokens, and changes nothing else.
            let rewrite = peek.withOutputCap(asked, endpoint: request.endpoint, body: body, compatibleServer: true)
            peeked = rewrite.peek
            body = rewrite.body
        }

        // OpenAI streams report usage only when asked: ask, and strip the answer later (unless
        // the provider refuses the field).
        let strip = peeked.stream && peeked.needsIncludeUsage && provider.asksStreamUsage
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

    /// Who pays: the key's user, or the end user a key allowed to attribute names (header
    /// `x-tokenctl-user`, OpenAI `user`, Anthropic `metadata.user_id`), under the key's team.
    /// Without `peek` (a body that does not parse), the header alone can name one. A name reports
    /// use for rows of their own (`(none)`, `(others)`), or one a key could not be made for
    /// (surrounding spaces, control characters) is not one: the key's user pays.
    static func payer(of principal: Principal, request: CallRequest, peek: RequestPeek?, plans: PlanBook) -> Payer {
        var user = principal.user
        if plans.mayAttributeEndUsers(keyUser: principal.user),
           let named = (request.declaredEndUser ?? peek?.user ?? peek?.metadataUserID)
               .map({ String($0.prefix(ReportDimension.longestName)) }),
           ReportDimension.isWellFormedName(named), !ReportDimension.isReservedLabel(named) {
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

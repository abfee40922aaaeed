import Foundation
import Ledger
import Metering
import NIOCore
import Policy

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

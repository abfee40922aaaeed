import NIOHTTP1
import Testing
@testable import Gateway

/// The caller's key as the SDKs send it: `Authorization: Bearer KEY` (OpenAI) or
/// `x-api-key: KEY` (Anthropic). The scheme's name is case-insensitive (RFC 9110, 11.1).
@Suite struct PresentedSecretTests {
    private func secret(_ headers: [(String, String)]) -> String? {
        ProxyHandler.secret(in: HTTPHeaders(headers))
    }

    @Test func theBearerSchemeInAnyCase() {
        #expect(secret([("Authorization", "Bearer sk-1")]) == "sk-1")
        #expect(secret([("authorization", "bearer sk-1")]) == "sk-1")
        #expect(secret([("AUTHORIZATION", "BEARER \t sk-1 ")]) == "sk-1")
        #expect(secret([("x-api-key", "sk-2"), ("Authorization", "Bearer sk-1")]) == "sk-2")
    }

    @Test func noKeyWithoutTheBearerScheme() {
        #expect(secret([("Authorization", "Basic c2stMQ==")]) == nil)
        #expect(secret([("Authorization", "Bearer")]) == nil)
        #expect(secret([("Authorization", "Bearer    ")]) == nil)
        #expect(secret([("Authorization", "Bearers sk-1")]) == nil)
        #expect(secret([]) == nil)
    }
}

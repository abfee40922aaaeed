import Testing
@testable import Policy

@Suite struct APIKeySecretTests {
    @Test func generatedKeysHaveTheDocumentedShape() {
        var ids = Set<String>(), secrets = Set<String>()
        for _ in 0..<200 {
            let key = APIKeySecret.generate()
            #expect(key.id.hasPrefix("key_") && key.id.count == 16)
            #expect(key.id.dropFirst(4).allSatisfy { "0123456789abcdef".contains($0) })
            #expect(APIKeySecret.looksLikeKeyId(key.id))
            #expect(key.secret.hasPrefix("tk-") && key.secret.count == 46)
            #expect(APIKeySecret.looksValid(key.secret))
            ids.insert(key.id)
            secrets.insert(key.secret)
        }
        #expect(ids.count == 200 && secrets.count == 200)
    }

    @Test func looksValidRejectsWrongShapes() {
        let body = String(repeating: "aZ9", count: 14) + "x"  // 43 base62 characters
        #expect(APIKeySecret.looksValid("tk-" + body))
        #expect(!APIKeySecret.looksValid("tk-" + body.dropLast()))
        #expect(!APIKeySecret.looksValid("tk-" + body + "y"))
        #expect(!APIKeySecret.looksValid("sk-" + body))
        #expect(!APIKeySecret.looksValid("tk-" + body.dropLast() + "-"))
        #expect(!APIKeySecret.looksValid("tk-" + body.dropLast() + "é"))
        #expect(!APIKeySecret.looksValid(""))
        #expect(!APIKeySecret.looksLikeKeyId("key_0123456789AB"))
        #expect(!APIKeySecret.looksLikeKeyId("key_0123456789a"))
    }

    @Test func hashIsLowercaseHexSHA256() {
        #expect(APIKeySecret.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(APIKeySecret.hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let key = APIKeySecret.generate()
        #expect(APIKeySecret.hash(key.secret) == APIKeySecret.hash(key.secret))
        #expect(APIKeySecret.hash(key.secret).count == 64)
    }

    @Test func principalDescribesWithoutSecrets() {
        #expect(Principal(keyId: "key_0123456789ab", user: "ana", team: "ml").description == "ana@ml (key_0123456789ab)")
        #expect(Principal(keyId: "key_0123456789ab", user: "ana") != Principal(keyId: "key_0123456789ab", user: "ana", team: "ml"))
    }
}

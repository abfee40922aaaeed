import Crypto
import FakeLLM
import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOSSL
import NIOTLS
import SwiftASN1
import X509

/// HTTPS for a FakeLLM server (`FakeLLMConfiguration.transport`): a certificate authority made
/// for this server alone, and a leaf certificate it signed for `localhost`, `127.0.0.1` and
/// `::1`. A client trusts `certificateAuthorityPEM` (tokenctl: a provider's `ca_file`), as it
/// would a company's own CA in front of a self-hosted model. ALPN offers HTTP/2 first, then
/// HTTP/1.1, as the providers' own endpoints do; on HTTP/2 each stream is answered on its own.
public struct FakeTLS: FakeTransport {
    /// The CA to trust, as PEM.
    public let certificateAuthorityPEM: String
    let context: NIOSSLContext

    /// A new CA and leaf, valid from an hour ago for `days` days (P-256 keys: quick to make).
    public static func generate(days: Int = 30) throws -> FakeTLS {
        let now = Date()
        let from = now.addingTimeInterval(-3600), until = now.addingTimeInterval(Double(days) * 86_400)

        let caKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        // A name and key identifiers of its own, as a real CA has: OpenSSL then tells a
        // certificate another run's CA signed from one this CA signed ("not trusted", curl 60),
        // and a bundle of an old and a new CA works while a renewal overlaps.
        let caKeyID = SubjectKeyIdentifier(hash: caKey.publicKey)
        let caName = try DistinguishedName {
            OrganizationName("FakeLLM")
            CommonName("FakeLLM test CA \(UInt32.random(in: 0...UInt32.max))")
        }
        let ca = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: caKey.publicKey,
            notValidBefore: from, notValidAfter: until, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                caKeyID
            },
            issuerPrivateKey: caKey)

        let leafKey = P256.Signing.PrivateKey()
        let leaf = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: Certificate.PublicKey(leafKey.publicKey),
            notValidBefore: from, notValidAfter: until, issuer: caName,
            subject: try DistinguishedName { CommonName("localhost") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectKeyIdentifier(hash: Certificate.PublicKey(leafKey.publicKey))
                AuthorityKeyIdentifier(keyIdentifier: caKeyID.keyIdentifier)
                SubjectAlternativeNames([
                    .dnsName("localhost"),
                    .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                    .ipAddress(ASN1OctetString(contentBytes: ArraySlice([UInt8](repeating: 0, count: 15) + [1]))),
                ])
            },
            issuerPrivateKey: caKey)

        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: try leaf.derBytes, format: .der))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(leafKey.derRepresentation), format: .der)))
        configuration.applicationProtocols = ["h2", "http/1.1"]
        // Close TCP right after its close_notify, as servers do, rather than wait up to 5 s for
        // the client's: libcurl 7.88 fails the other streams of a closed connection only at the FIN.
        configuration.shutdownTimeout = .zero
        // With its final newline: a bundle made with `cat` of two such files stays valid PEM.
        return FakeTLS(certificateAuthorityPEM: try ca.serializeAsPEM().pemString + "\n",
                       context: try NIOSSLContext(configuration: configuration))
    }

    public var scheme: String { "https" }

    public func configure(_ channel: any Channel, serve: @escaping @Sendable (any Channel) throws -> Void)
        -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        }.flatMap {
            channel.configureHTTP2SecureUpgrade(
                h2ChannelConfigurator: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                            mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                        ) { stream in
                            stream.eventLoop.makeCompletedFuture {
                                try stream.pipeline.syncOperations.addHandler(StreamFailureHandler())
                                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                                try serve(stream)
                            }
                        }
                    }
                },
                http1ChannelConfigurator: { channel in
                    channel.eventLoop.makeCompletedFuture { try CleartextTransport.serveHTTP1(on: channel, serve) }
                })
        }
    }

    /// Writes `certificateAuthorityPEM` to `path`, for clients that read trust from a file.
    public func writeCertificateAuthority(to path: String) throws {
        try certificateAuthorityPEM.write(toFile: path, atomically: true, encoding: .utf8)
    }
}

extension Certificate {
    fileprivate var derBytes: [UInt8] {
        get throws {
            var serializer = DER.Serializer()
            try serializer.serialize(self)
            return serializer.serializedBytes
        }
    }
}

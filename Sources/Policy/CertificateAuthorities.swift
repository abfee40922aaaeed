import Foundation
import SwiftASN1
import X509

/// The certificate authorities a provider's TLS certificate must chain to (`ca_file`), in place
/// of the system's store: a company CA in front of a self-hosted model. Read when the policy
/// loads, and again at each reload, so that a file that cannot be used fails the load rather
/// than every call at its handshake.
public struct CertificateAuthorities: Sendable, Equatable {
    /// The file as configured, resolved against the policy directory.
    public let path: String
    /// Its PEM text: certificates only, each one parsed at load.
    public let pem: [UInt8]

    public init(path: String, pem: [UInt8]) {
        self.path = path
        self.pem = pem
    }

    /// A CA file holds the few authorities a provider needs (libcurl copies it into every
    /// call's handle and compares it with each pooled connection's); this also keeps a path
    /// such as /dev/zero from being read without end.
    static let maxBytes = 1 << 20

    struct Unusable: Error {
        let reason: String
    }

    /// Reads `path` (relative to `directory` unless absolute): a regular file of at most
    /// `maxBytes` holding one or more PEM certificates and nothing else.
    static func read(_ path: String, directory: String) throws(Unusable) -> CertificateAuthorities {
        let resolved = resolve(path, directory: directory)
        var info = stat()
        guard stat(resolved, &info) == 0 else { throw Unusable(reason: "'\(resolved)' does not exist") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw Unusable(reason: "'\(resolved)' is not a regular file") }
        guard info.st_size <= maxBytes else {
            throw Unusable(reason: "'\(resolved)' is larger than 1 MiB: list only the authorities this provider needs")
        }
        guard let data = FileManager.default.contents(atPath: resolved) else {
            throw Unusable(reason: "'\(resolved)' cannot be read")
        }
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: String(decoding: data, as: UTF8.self))
        } catch {
            throw Unusable(reason: "'\(resolved)' is not valid PEM (\(error))")
        }
        guard !documents.isEmpty else {
            throw Unusable(reason: "'\(resolved)' holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        }
        for (index, document) in documents.enumerated() {
            guard document.discriminator == "CERTIFICATE" else {
                throw Unusable(reason: "'\(resolved)' holds a \(document.discriminator) block: certificates only")
            }
            do {
                _ = try Certificate(pemDocument: document)
            } catch {
                throw Unusable(reason: "'\(resolved)': certificate \(index + 1) does not parse (\(error))")
            }
        }
        return CertificateAuthorities(path: resolved, pem: Array(data))
    }

    static func resolve(_ path: String, directory: String) -> String {
        path.hasPrefix("/") ? path : (directory as NSString).appendingPathComponent(path)
    }
}

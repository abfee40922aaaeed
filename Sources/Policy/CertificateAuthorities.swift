import Foundation
import X509

/// The certificate authorities a provider's TLS certificate must chain to (`ca_file`), in place
/// of the system's store: a company CA in front of a self-hosted model. Read when the policy
/// loads, and again at each reload, so that a file that cannot be used fails the load rather
/// than every call at its handshake.
public struct CertificateAuthorities: Sendable, Equatable {
    /// The file as configured, resolved against the policy directory.
    public let path: String
    /// The certificates as libcurl gets them: each one parsed at load and written again as a
    /// PEM block of its own, so that what OpenSSL reads is what was checked (a bundle made with
    /// `cat` of files without a final newline, or base64 on one line, loads either way).
    public let pem: [UInt8]
    /// Subject and expiry of each certificate, in file order.
    public let certificates: [Summary]

    public struct Summary: Sendable, Equatable {
        public let subject: String
        public let notValidBefore: Date
        public let notValidAfter: Date
    }

    init(path: String, pem: [UInt8], certificates: [Summary] = []) {
        self.path = path
        self.pem = pem
        self.certificates = certificates
    }

    /// A CA file holds the few authorities a provider needs (libcurl copies it into every
    /// call's handle and compares it with each pooled connection's); this also keeps a path
    /// such as /dev/zero from being read without end.
    static let maxBytes = 1 << 20

    struct Unusable: Error {
        let reason: String
    }

    /// Reads `resolved` (see `resolve`): a regular file of at most `maxBytes` holding one or
    /// more PEM certificates and no other PEM block (text between blocks, such as comments, is
    /// skipped).
    static func read(_ resolved: String) throws(Unusable) -> CertificateAuthorities {
        var info = stat()
        guard stat(resolved, &info) == 0 else { throw Unusable(reason: "'\(resolved)' does not exist") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw Unusable(reason: "'\(resolved)' is not a regular file") }
        guard info.st_size <= maxBytes else {
            throw Unusable(reason: "'\(resolved)' is larger than 1 MiB: list only the authorities this provider needs")
        }
        guard let data = FileManager.default.contents(atPath: resolved) else {
            throw Unusable(reason: "'\(resolved)' cannot be read")
        }
        let blocks: [PEMBlock]
        do {
            blocks = try PEMBlock.all(in: String(decoding: data, as: UTF8.self))
        } catch {
            throw Unusable(reason: "'\(resolved)': \(error.reason)")
        }
        guard !blocks.isEmpty else {
            throw Unusable(reason: "'\(resolved)' holds no PEM certificate (-----BEGIN CERTIFICATE-----); "
                + "a DER file converts with `openssl x509 -inform der -in FILE -out FILE.pem`")
        }
        var pem = ""
        var summaries: [Summary] = []
        for (index, block) in blocks.enumerated() {
            guard block.label == "CERTIFICATE" else {
                throw Unusable(reason: "'\(resolved)': block \(index + 1) is labelled \(block.label), not CERTIFICATE")
            }
            let certificate: Certificate
            do {
                certificate = try Certificate(derEncoded: block.der)
            } catch {
                // swift-certificates is stricter than OpenSSL (BER, odd serials): say what it found.
                let detail = String(describing: error).split(separator: "\n").first.map { String($0.prefix(200)) } ?? ""
                throw Unusable(reason: "'\(resolved)': certificate \(index + 1) does not parse as X.509 (\(detail))")
            }
            pem += block.text
            summaries.append(Summary(subject: certificate.subject.description,
                                     notValidBefore: certificate.notValidBefore,
                                     notValidAfter: certificate.notValidAfter))
        }
        return CertificateAuthorities(path: resolved, pem: Array(pem.utf8), certificates: summaries)
    }

    /// `ca_file` as written: absolute, or relative to the policy directory.
    static func resolve(_ path: String, directory: String) -> String {
        path.hasPrefix("/") ? path : (directory as NSString).appendingPathComponent(path)
    }
}

/// One `-----BEGIN X----- … -----END X-----` block, found as OpenSSL finds them: a BEGIN line
/// starts a line (other text, comments included, is skipped), its body is base64 over any
/// number of lines, and it ends at the matching END line. Unlike OpenSSL, a BEGIN right after
/// an END on the same line (`cat` of files without a final newline) starts the next block.
package struct PEMBlock: Equatable {
    package let label: String
    package let der: [UInt8]

    package init(label: String, der: [UInt8]) {
        self.label = label
        self.der = der
    }

    package struct Malformed: Error, Equatable {
        package let reason: String
    }

    /// This block as OpenSSL writes it: base64 in lines of 64.
    package var text: String {
        var lines = ["-----BEGIN \(label)-----"]
        var rest = Substring(Data(der).base64EncodedString())
        while !rest.isEmpty {
            lines.append(String(rest.prefix(64)))
            rest = rest.dropFirst(64)
        }
        lines.append("-----END \(label)-----")
        return lines.joined(separator: "\n") + "\n"
    }

    package static func all(in text: String) throws(Malformed) -> [PEMBlock] {
        var blocks: [PEMBlock] = []
        var open: (label: String, body: String)?
        // \r\n is one Character: split on newlines, not on "\n".
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).makeIterator()
        var pending: Substring? = nil  // the rest of a line after an END marker
        while let line = pending ?? lines.next() {
            pending = nil
            if let block = open {
                let end = "-----END \(block.label)-----"
                guard line.hasPrefix(end) else {
                    open!.body += line.filter { !$0.isWhitespace }
                    continue
                }
                guard let der = Data(base64Encoded: block.body), !der.isEmpty else {
                    throw Malformed(reason: "block \(blocks.count + 1) (\(block.label)) is not base64")
                }
                blocks.append(PEMBlock(label: block.label, der: Array(der)))
                open = nil
                let rest = line.dropFirst(end.count)
                if rest.hasPrefix("-----BEGIN ") { pending = rest }
            } else if let label = beginLabel(line) {
                open = (label, "")
            }
        }
        if let block = open {
            throw Malformed(reason: "block \(blocks.count + 1) (\(block.label)) has no -----END \(block.label)----- line")
        }
        return blocks
    }

    /// The label of a `-----BEGIN LABEL-----` line: capitals, digits and spaces, as PEM's are.
    private static func beginLabel(_ line: Substring) -> String? {
        var text = line
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        guard text.hasPrefix("-----BEGIN "), text.hasSuffix("-----"), text.count > 16 else { return nil }
        let label = text.dropFirst(11).dropLast(5)
        guard (1...64).contains(label.count),
              label.allSatisfy({ $0 == " " || ($0.isASCII && ($0.isUppercase || $0.isNumber)) }) else { return nil }
        return String(label)
    }
}

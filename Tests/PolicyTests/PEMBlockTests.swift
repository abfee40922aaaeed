import Foundation
import Testing
@testable import Policy

/// `ca_file`'s PEM blocks, found as OpenSSL finds them (plus `cat` of files without a final newline).
@Suite struct PEMBlockTests {
    static let body = Data((0..<90).map { UInt8($0) }).base64EncodedString()  // 120 characters
    static func block(_ label: String = "CERTIFICATE", lineLength: Int = 64, ending: String = "\n") -> String {
        var lines = ["-----BEGIN \(label)-----"]
        var rest = Substring(body)
        while !rest.isEmpty {
            lines.append(String(rest.prefix(lineLength)))
            rest = rest.dropFirst(lineLength)
        }
        lines.append("-----END \(label)-----")
        return lines.joined(separator: ending) + ending
    }

    static func labels(_ text: String) throws -> [String] {
        try PEMBlock.all(in: text).map(\.label)
    }

    @Test func blocksAreFoundAtTheStartOfALineAmongOtherText() throws {
        let text = "# Company CA, renewed 2026 (paste below a -----BEGIN CERTIFICATE----- block)\n"
            + Self.block() + "\n" + Self.block().split(separator: "\n").map { "# " + $0 }.joined(separator: "\n")
            + "\n" + Self.block().split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n"
        let blocks = try PEMBlock.all(in: text)
        #expect(blocks.count == 1)  // the comment's marker, the commented-out and the indented blocks are text
        #expect(blocks.first?.der == (0..<90).map { UInt8($0) })
    }

    @Test func lineEndingsLineLengthsAndCatOfFilesWithoutAFinalNewline() throws {
        #expect(try Self.labels(Self.block(ending: "\r\n")) == ["CERTIFICATE"])
        #expect(try Self.labels(Self.block(lineLength: 1_000)) == ["CERTIFICATE"])
        #expect(try Self.labels(String(Self.block().dropLast()) + Self.block()) == ["CERTIFICATE", "CERTIFICATE"])
        #expect(try Self.labels(Self.block("TRUSTED CERTIFICATE") + Self.block("X509 CRL")) == ["TRUSTED CERTIFICATE", "X509 CRL"])
        #expect(try Self.labels("-----BEGIN certificate-----\nAAAA\n-----END certificate-----\n").isEmpty)  // not a PEM label
    }

    @Test func malformedBlocksSayWhich() {
        func reason(_ text: String) -> String? {
            do {
                _ = try PEMBlock.all(in: text)
                return nil
            } catch {
                return error.reason
            }
        }
        #expect(reason(Self.block() + "-----BEGIN CERTIFICATE-----\nAAAA\n") ==
                "block 2 (CERTIFICATE) has no -----END CERTIFICATE----- line")
        #expect(reason("-----BEGIN CERTIFICATE-----\nnot*base64\n-----END CERTIFICATE-----\n") ==
                "block 1 (CERTIFICATE) is not base64")
        #expect(reason("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n") == "block 1 (CERTIFICATE) is not base64")
    }
}

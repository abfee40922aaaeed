import Policy

/// `ca_file`'s PEM scanner on arbitrary text: it never traps; the blocks it finds, written out
/// again as OpenSSL writes them, are found again unchanged; and CRLF line endings change nothing.
public enum PEMBlockCheck {
    public static func run(_ data: UnsafeRawBufferPointer) throws {
        let text = String(decoding: data, as: UTF8.self)
        let found = Result { () throws(PEMBlock.Malformed) in try PEMBlock.all(in: text) }

        let crlf = text.replacing("\r\n", with: "\n").replacing("\n", with: "\r\n")
        let foundCRLF = Result { () throws(PEMBlock.Malformed) in try PEMBlock.all(in: crlf) }
        guard found == foundCRLF || text.contains("\r") else {
            throw FuzzFailure("CRLF line endings changed the result: \(found) vs \(foundCRLF)")
        }

        guard case .success(let blocks) = found else { return }
        let written = blocks.map(\.text).joined()
        let again = Result { () throws(PEMBlock.Malformed) in try PEMBlock.all(in: written) }
        guard again == .success(blocks) else {
            throw FuzzFailure("\(blocks.count) blocks written out read back as \(again)")
        }
    }
}

import Foundation
import FuzzChecks
import Testing

/// Every fuzz seed and every input a fuzzer ever crashed on (`Corpus/<target>/`) is replayed
/// through the same property checks the libFuzzer targets run (`scripts/fuzz.sh`), so a crash,
/// once found and saved here, stays a regression test.
@Suite("Fuzz corpus replay")
struct CorpusReplayTests {
    static func inputs(_ target: String) -> [String] {
        let directory = Bundle.module.resourceURL!.appendingPathComponent("Corpus/\(target)").path
        return FuzzTarget.files(at: directory)
    }

    static func replay(_ target: String, _ check: FuzzTarget.Check) throws {
        let paths = inputs(target)
        #expect(!paths.isEmpty, "no inputs for \(target)")
        for path in paths {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            do {
                try data.withUnsafeBytes { try check($0) }
            } catch {
                Issue.record("\((path as NSString).lastPathComponent): \(error)")
            }
        }
    }

    @Test("SSE scanner: same events whatever the read boundaries")
    func sse() throws { try Self.replay("sse", SSEScannerCheck.run) }

    @Test("usage readers and relay: no trap, no negative tokens, bytes unchanged")
    func responseUsage() throws { try Self.replay("response-usage", ResponseMeterCheck.run) }

    @Test("policy loader: no trap, problems point into the files")
    func policy() throws { try Self.replay("policy", PolicyLoaderCheck.run) }

    @Test("ca_file's PEM scanner: no trap, blocks read back unchanged, CRLF changes nothing")
    func pem() throws { try Self.replay("pem", PEMBlockCheck.run) }
}

import Foundation
import Policy

/// The policy loader on arbitrary files: the input is cut at 0x00 bytes into providers.yaml,
/// prices.yaml, plans.yaml and gateway.yaml. Loading never traps; a refusal lists problems that
/// point into the files given (a line within the file), and an accepted policy loads the same twice.
public enum PolicyLoaderCheck {
    static let names = ["providers.yaml", "prices.yaml", "plans.yaml", "gateway.yaml"]
    static let environment = ["OPENAI_API_KEY": "sk-fuzz", "ANTHROPIC_API_KEY": "sk-ant-fuzz"]

    public static func run(_ data: UnsafeRawBufferPointer) throws {
        var files: [String: Data] = [:]
        var lineCounts: [String: Int] = [:]
        for (index, part) in data.split(separator: 0, maxSplits: names.count - 1,
                                         omittingEmptySubsequences: false).enumerated() {
            files[names[index]] = Data(part)
            lineCounts[names[index]] = part.count { $0 == UInt8(ascii: "\n") } + 1
        }
        do {
            let first = try PolicyLoader.load(files: files, environment: environment)
            let second = try PolicyLoader.load(files: files, environment: environment)
            guard first.version == second.version else {
                throw FuzzFailure("the same files loaded as two versions: \(first.version), \(second.version)")
            }
        } catch let error as PolicyError {
            guard !error.problems.isEmpty else { throw FuzzFailure("a refusal without problems") }
            for problem in error.problems {
                guard let lines = lineCounts[problem.file] ?? (files[problem.file] == nil ? 0 : nil),
                      problem.line >= 0, problem.line <= lines else {
                    throw FuzzFailure("problem points outside its file: \(problem)")
                }
            }
        }
    }
}

/// One thing wrong (or worth a warning) in a policy file, located precisely enough to fix it.
public struct PolicyProblem: Sendable, Hashable, CustomStringConvertible {
    /// File name relative to the policy directory (`providers.yaml`).
    public var file: String
    /// 1-based line, or 0 when the problem concerns the whole file.
    public var line: Int
    /// Dotted path of the offending field (`providers.openai.dialect`, `models[2].match`); may be empty.
    public var field: String
    public var message: String

    public init(file: String, line: Int, field: String, message: String) {
        self.file = file
        self.line = line
        self.field = field
        self.message = message
    }

    /// `file:line: field: message`, dropping the parts that are unknown.
    public var description: String {
        var text = line > 0 ? "\(file):\(line): " : "\(file): "
        if !field.isEmpty { text += "\(field): " }
        return text + message
    }
}

/// A policy directory that cannot be used; carries every problem found, not just the first.
public struct PolicyError: Error, Sendable, CustomStringConvertible {
    public var problems: [PolicyProblem]
    /// Files outside the YAML that the policy names (`ca_file`), readable or not, with their
    /// `FileStamp` as the load found them: a reloader watches them too, so that creating a
    /// missing one is noticed.
    public var namedFiles: [String: String]

    public init(problems: [PolicyProblem], namedFiles: [String: String] = [:]) {
        self.problems = problems
        self.namedFiles = namedFiles
    }

    /// One problem per line, in file order.
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

import Yams

/// Reads one YAML policy file into typed values, recording a `PolicyProblem` for everything
/// wrong instead of stopping, so an admin sees all mistakes in one `policy check`.
///
/// Nodes come from `Yams.compose` (not `Decodable`) because only nodes carry line numbers.
struct PolicyFileReader {
    let file: String
    private(set) var problems: [PolicyProblem] = []
    private(set) var warnings: [PolicyProblem] = []

    init(file: String) { self.file = file }

    /// The document's root node; nil for an empty file or a syntax error (recorded).
    mutating func parse(_ text: String) -> Node? {
        do {
            return try Yams.compose(yaml: text)
        } catch let error as YamlError {
            let (line, message) = Self.describe(error, in: text)
            problems.append(PolicyProblem(file: file, line: line, field: "yaml", message: message))
        } catch {
            problems.append(PolicyProblem(file: file, line: 0, field: "yaml", message: "\(error)"))
        }
        return nil
    }

    mutating func problem(_ node: Node?, _ field: String, _ message: String) {
        problems.append(PolicyProblem(file: file, line: Self.line(of: node), field: field, message: message))
    }

    mutating func problem(at line: Int, _ field: String, _ message: String) {
        problems.append(PolicyProblem(file: file, line: line, field: field, message: message))
    }

    mutating func warning(_ node: Node?, _ field: String, _ message: String) {
        warnings.append(PolicyProblem(file: file, line: Self.line(of: node), field: field, message: message))
    }

    static func line(of node: Node?) -> Int { node?.mark?.line ?? 0 }

    // MARK: - Shapes

    /// The entries of a mapping in file order, after reporting keys outside `allowed`.
    mutating func mapping(_ node: Node, _ field: String, allowed: [String]? = nil) -> MappingFields? {
        guard case .mapping(let mapping) = node else {
            problem(node, field, "expected a mapping, found \(Self.kind(of: node))")
            return nil
        }
        var entries: [MappingFields.Entry] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let key) = keyNode else {
                problem(keyNode, field, "keys must be plain names, found \(Self.kind(of: keyNode))")
                continue
            }
            let path = field.isEmpty ? key.string : "\(field).\(key.string)"
            if let allowed, !allowed.contains(key.string) {
                problem(keyNode, path, "unknown key '\(key.string)' (expected \(Self.oneOf(allowed)))")
                continue
            }
            entries.append(.init(key: key.string, keyNode: keyNode, value: value, path: path))
        }
        return MappingFields(node: node, path: field, entries: entries)
    }

    mutating func sequence(_ node: Node, _ field: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            problem(node, field, "expected a list, found \(Self.kind(of: node))")
            return nil
        }
        return Array(sequence)
    }

    /// Required field: reports it missing, at the line of the mapping that lacks it.
    mutating func require(_ fields: MappingFields, _ key: String) -> MappingFields.Entry? {
        if let entry = fields[key] { return entry }
        problem(fields.node, fields.path(key), "missing required field")
        return nil
    }

    // MARK: - Scalars

    /// Any non-null scalar as its literal text (YAML `123` or `true` are taken as written).
    mutating func string(_ entry: MappingFields.Entry) -> String? {
        string(entry.value, entry.path)
    }

    mutating func string(_ node: Node, _ field: String) -> String? {
        guard case .scalar(let scalar) = node else {
            problem(node, field, "expected a string, found \(Self.kind(of: node))")
            return nil
        }
        if Self.tag(of: node) == .null {
            problem(node, field, "missing value")
            return nil
        }
        return scalar.string
    }

    /// `true` or `false` (not YAML 1.1's yes, no, on or off: they surprise).
    mutating func boolean(_ entry: MappingFields.Entry) -> Bool? {
        let node = entry.value
        guard case .scalar(let scalar) = node, Self.tag(of: node) == .bool,
              let value = ["true": true, "false": false][scalar.string] else {
            let found = if case .scalar(let scalar) = node, Self.tag(of: node) != .null {
                "'\(scalar.string)'"
            } else {
                Self.kind(of: node)
            }
            problem(node, entry.path, "expected true or false, found \(found)")
            return nil
        }
        return value
    }

    /// One of an enumeration's names; else a problem naming them all.
    mutating func choice<Choice: RawRepresentable & CaseIterable>(_ entry: MappingFields.Entry) -> Choice?
    where Choice.RawValue == String {
        guard let text = string(entry) else { return nil }
        if let value = Choice(rawValue: text) { return value }
        problem(entry.value, entry.path,
                "unknown value '\(text)' (expected \(Self.oneOf(Choice.allCases.map(\.rawValue))))")
        return nil
    }

    /// A plain decimal whole number within `range` (YAML `10_485_760` is accepted).
    mutating func integer(_ entry: MappingFields.Entry, in range: ClosedRange<Int>) -> Int? {
        let node = entry.value
        guard case .scalar(let scalar) = node, Self.tag(of: node) == .int else {
            problem(node, entry.path, "expected a whole number, found \(Self.kind(of: node))")
            return nil
        }
        let digits = scalar.string.filter { $0 != "_" }
        guard digits.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "-" || $0 == "+") }),
              let value = Int(digits) else {
            problem(node, entry.path, "expected a decimal whole number, found '\(scalar.string)'")
            return nil
        }
        guard range.contains(value) else {
            problem(node, entry.path, "\(value) is out of range (\(range.lowerBound)...\(range.upperBound))")
            return nil
        }
        return value
    }

    // MARK: - Descriptions

    static func tag(of node: Node) -> Tag.Name { Resolver.default.resolveTag(of: node) }

    /// What the node is, for "expected X, found Y" messages.
    static func kind(of node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            switch tag(of: node) {
            case .null: return "nothing"
            case .bool: return "boolean '\(scalar.string)'"
            case .int, .float: return "number \(scalar.string)"
            default: return "string '\(scalar.string)'"
            }
        }
    }

    static func oneOf(_ names: [String]) -> String {
        switch names.count {
        case 0: return "no keys"
        case 1: return names[0]
        default: return names.dropLast().joined(separator: ", ") + " or " + names.last!
        }
    }

    /// Line and one-line message of a Yams error (its own description spans several lines).
    static func describe(_ error: YamlError, in text: String) -> (Int, String) {
        func join(_ context: YamlError.Context?, _ problem: String) -> String {
            guard let context else { return problem }
            return "\(problem) (\(context.text) at line \(context.mark.line))"
        }
        switch error {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            // At the end of a file without a final newline, libyaml's mark is on the line after
            // the last one: point at the last line instead (found by fuzzing).
            let lines = text.utf8.count { $0 == UInt8(ascii: "\n") } + (text.utf8.last == UInt8(ascii: "\n") ? 0 : 1)
            return (min(mark.line, max(lines, 1)), "syntax error: " + join(context, problem))
        case .reader(let problem, let offset, _, _):
            let line = offset.map { text.prefix($0).filter { $0 == "\n" }.count + 1 } ?? 0
            return (line, "unreadable text: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return (context.mark.line, "duplicate key \(keys) in one mapping")
        default:
            return (0, "\(error)")
        }
    }
}

/// A mapping's entries in file order, with each entry's dotted path for messages.
struct MappingFields {
    struct Entry {
        let key: String
        let keyNode: Node
        let value: Node
        let path: String
    }

    let node: Node
    let path: String
    let entries: [Entry]

    subscript(key: String) -> Entry? { entries.first { $0.key == key } }

    func path(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
}

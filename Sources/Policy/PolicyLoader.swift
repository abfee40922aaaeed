import Crypto
import Foundation
import Metering
import Yams

/// Turns a policy directory into a validated `PolicySet`, or a `PolicyError` listing every problem.
///
/// Each file has a reader (`GatewayFile`, `ProvidersFile`, `PricesFile`, `PlansFile`); checks
/// that need two files (routes vs prices) run last, except plans' models, which `PlansFile`
/// checks against the routes and prices read before it. A new file adds a reader and an entry
/// in `knownFiles`.
public enum PolicyLoader {
    /// Files read, in load order; `required` ones must exist.
    public static let knownFiles: [(name: String, required: Bool)] = [
        (GatewayFile.name, false),
        (ProvidersFile.name, true),
        (PricesFile.name, true),
        (PlansFile.name, false),
    ]

    public static func load(directory: String,
                            environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(PolicyError) -> PolicySet {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw PolicyError(problems: [PolicyProblem(file: directory, line: 0, field: "",
                                                       message: "policy directory not found")])
        }
        // Else its files would all read as missing.
        guard access(directory, R_OK | X_OK) == 0 else {
            throw PolicyError(problems: [PolicyProblem(file: directory, line: 0, field: "",
                                                       message: "policy directory cannot be read (\(String(cString: strerror(errno))))")])
        }
        var sources: [String: Data] = [:]
        var stamps: [String: String] = [:]
        var problems: [PolicyProblem] = []
        for (name, required) in knownFiles {
            let path = (directory as NSString).appendingPathComponent(name)
            // Taken before the read: a change made after it is a change to load.
            let stamp = FileStamp.of(path)
            if let data = FileManager.default.contents(atPath: path) {
                sources[name] = data
                stamps[name] = stamp
            } else if required || FileManager.default.fileExists(atPath: path) {
                let message = required && !FileManager.default.fileExists(atPath: path)
                    ? "missing required file" : "cannot be read"
                problems.append(PolicyProblem(file: name, line: 0, field: "", message: message))
            }
        }
        var warnings = strayFiles(in: directory)
        var namedFiles: [String: String] = [:]
        let set = build(sources, directory: directory, environment: environment,
                        problems: &problems, warnings: &warnings, namedFiles: &namedFiles, sourceFiles: stamps)
        guard problems.isEmpty, let set else { throw PolicyError(problems: ordered(problems), namedFiles: namedFiles) }
        return set
    }

    /// Validates policy files given in memory, keyed by file name (e.g. `providers.yaml`), with
    /// the same checks and messages as `load(directory:)`; required files that are absent are problems.
    /// Paths they name (`ca_file`) are relative to the current directory.
    public static func load(files: [String: Data],
                            environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(PolicyError) -> PolicySet {
        var problems = knownFiles.filter { $0.required && files[$0.name] == nil }
            .map { PolicyProblem(file: $0.name, line: 0, field: "", message: "missing required file") }
        var warnings: [PolicyProblem] = []
        var namedFiles: [String: String] = [:]
        let set = build(files, directory: FileManager.default.currentDirectoryPath, environment: environment,
                        problems: &problems, warnings: &warnings, namedFiles: &namedFiles)
        guard problems.isEmpty, let set else { throw PolicyError(problems: ordered(problems), namedFiles: namedFiles) }
        return set
    }

    /// Validates file contents already in memory (keyed by file name); nil when problems were found.
    /// Relative paths in them are relative to `directory`.
    static func build(_ sources: [String: Data], directory: String, environment: [String: String],
                      problems: inout [PolicyProblem], warnings: inout [PolicyProblem],
                      namedFiles: inout [String: String], sourceFiles: [String: String] = [:]) -> PolicySet? {
        /// A reader for the file, its root node, and whether its contents should be read:
        /// not when it is absent or unparseable (that problem is already recorded).
        func reader(_ name: String) -> (PolicyFileReader, Node?, Bool) {
            var reader = PolicyFileReader(file: name)
            guard let data = sources[name] else { return (reader, nil, false) }
            guard let text = String(data: data, encoding: .utf8) else {
                reader.problem(nil, "", "not UTF-8 text")
                return (reader, nil, false)
            }
            let root = reader.parse(text)
            return (reader, root, reader.problems.isEmpty)
        }
        var (gatewayReader, gatewayRoot, gatewayParsed) = reader(GatewayFile.name)
        let gateway = gatewayParsed ? GatewayFile.read(gatewayRoot, &gatewayReader) : .defaults

        var (providersReader, providersRoot, providersParsed) = reader(ProvidersFile.name)
        let upstreams = providersParsed
            ? ProvidersFile.read(providersRoot, gateway: gateway, environment: environment,
                                 directory: directory, &providersReader)
            : ProvidersFile.Contents()
        namedFiles = upstreams.namedFiles

        var (pricesReader, pricesRoot, pricesParsed) = reader(PricesFile.name)
        let prices = pricesParsed ? PricesFile.read(pricesRoot, &pricesReader) : []

        // Plans' models, and routes and prices with each other, are checked only when both files
        // are there and sound: otherwise each model would repeat their problem as "not routed"
        // or "no price" (a prices.yaml deleted gave a line per model of every plan after its own).
        let catalogSound = providersParsed && pricesParsed && providersReader.problems.isEmpty && pricesReader.problems.isEmpty
        let catalog = catalogSound
            ? PlansFile.ModelCatalog(routes: upstreams.routes.map(\.route.pattern), prices: prices.map(\.price.model),
                                     refuseUnpriced: gateway.unpricedModels == .refuse)
            : nil
        var (plansReader, plansRoot, plansParsed) = reader(PlansFile.name)
        let plans = plansParsed ? PlansFile.read(plansRoot, catalog: catalog, &plansReader) : .unlimited
        if plans.limitsNothing, plansReader.problems.isEmpty, !PlansFile.saysSomething(plansRoot) {
            // Said at every start and check: a reload refuses to get here from limits (see
            // `PolicyReloader.checkNothingVanishes`), but a restart on such files loads them.
            // A file that names a plan or a default (`defaults: { plan: unlimited }`) means it.
            let what = sources[PlansFile.name] == nil ? "not found" : "names no plan, user, team or org limit"
            plansReader.warning(nil, "", "\(what): every caller is unlimited (no rate limit, output cap, concurrency limit or budget)")
        }

        for reader in [gatewayReader, providersReader, pricesReader, plansReader] {
            problems += reader.problems
            warnings += reader.warnings
        }
        let book = PriceBook(prices.map(\.price))
        if catalogSound {
            crossCheck(routes: upstreams.routes, prices: prices, book: book, gateway: gateway,
                       problems: &problems, warnings: &warnings)
        }
        guard problems.isEmpty else { return nil }
        let routes = upstreams.routes.map(\.route)
        return PolicySet(providers: upstreams.providers, routes: routes, prices: book, gateway: gateway,
                         plans: plans, version: version(of: sources, providers: upstreams.providers),
                         warnings: ordered(warnings), namedFiles: namedFiles, sourceFiles: sourceFiles)
    }

    /// Routes that no price covers, and prices that no route reaches.
    private static func crossCheck(routes: [ProvidersFile.PlacedRoute], prices: [PricesFile.PlacedPrice],
                                   book: PriceBook, gateway: GatewaySettings,
                                   problems: inout [PolicyProblem], warnings: inout [PolicyProblem]) {
        let today = Day.today()
        let consequence = gateway.unpricedModels == .refuse
            ? "calls for it will be refused" : "calls for it will be recorded at zero cost"
        for placed in routes {
            let pattern = placed.route.pattern
            let field = "\(placed.field).match"
            if pattern.isExact {
                guard !book.covers(pattern.text) else { continue }
                if gateway.unpricedModels == .refuse {
                    // Every call would be refused: a dead route is a mistake, not a warning.
                    problems.append(PolicyProblem(file: ProvidersFile.name, line: placed.line, field: field,
                        message: "no price for model '\(pattern)' in prices.yaml; every call would be refused "
                            + "(add a price, or set unpriced_models: allow in gateway.yaml)"))
                } else {
                    warnings.append(PolicyProblem(file: ProvidersFile.name, line: placed.line, field: field,
                        message: "no price for model '\(pattern)' in prices.yaml; \(consequence)"))
                }
            } else if !prices.contains(where: { GlobRelation.intersects(pattern, $0.price.model) }) {
                warnings.append(PolicyProblem(file: ProvidersFile.name, line: placed.line, field: field,
                    message: "no price in prices.yaml matches any model of '\(pattern)'; \(consequence)"))
            }
        }
        var reported = Set<ModelPattern>()
        for placed in prices where !reported.contains(placed.price.model) {
            let model = placed.price.model
            let routed = model.isExact
                ? routes.contains { $0.route.pattern.matches(model.text) }
                : routes.contains { GlobRelation.intersects($0.route.pattern, model) }
            if !routed {
                reported.insert(model)
                warnings.append(PolicyProblem(file: PricesFile.name, line: placed.line, field: "\(placed.field).model",
                    message: "no route in providers.yaml sends '\(model)' to a provider; this price is unused"))
            } else if model.isExact, !placed.price.isVariant, book.price(for: model.text, on: today) == nil,
                      let first = book.firstPriced(model.text), first > today {
                // Priced from a later day only (a date mistyped, or set ahead): unpriced until then.
                // Today's date stays out of the text: a reload logs only warnings it had not.
                reported.insert(model)
                warnings.append(PolicyProblem(file: PricesFile.name, line: placed.line, field: "\(placed.field).effective_from",
                    message: "'\(model)' has no price in effect yet: its first is from \(first) (UTC), and until then \(consequence)"))
            }
        }
    }

    /// YAML files in the directory that the loader does not read (a misspelt name is ignored silently otherwise).
    private static func strayFiles(in directory: String) -> [PolicyProblem] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let known = Set(knownFiles.map(\.name))
        return names.sorted()
            .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !known.contains($0) }
            .map { PolicyProblem(file: $0, line: 0, field: "",
                                 message: "not a policy file tokenctl reads (expected \(PolicyFileReader.oneOf(knownFiles.map(\.name)))); ignored") }
    }

    /// First 12 hex digits of SHA-256 over each file's name, length and bytes, in load order,
    /// then each provider's `ca_file` certificates (by provider name, not path: replicas whose
    /// policy directories sit at different paths agree): a renewed CA is a new policy version.
    static func version(of sources: [String: Data], providers: [String: Provider] = [:]) -> String {
        var hasher = SHA256()
        func add(_ name: String, _ bytes: some DataProtocol) {
            hasher.update(data: Data(name.utf8))
            withUnsafeBytes(of: UInt64(bytes.count).bigEndian) { hasher.update(bufferPointer: $0) }
            hasher.update(data: bytes)
        }
        for (name, _) in knownFiles {
            guard let data = sources[name] else { continue }
            add(name, data)
        }
        for name in providers.keys.sorted() {
            guard let authorities = providers[name]!.certificateAuthorities else { continue }
            add(name, authorities.pem)
        }
        return hasher.finalize().prefix(6).map { String(format: "%02x", $0) }.joined()
    }

    /// Problems grouped by file in load order, then by line; stable within a line.
    static func ordered(_ problems: [PolicyProblem]) -> [PolicyProblem] {
        let rank = Dictionary(uniqueKeysWithValues: knownFiles.enumerated().map { ($1.name, $0) })
        return problems.enumerated().sorted { a, b in
            let ka = (rank[a.element.file] ?? rank.count, a.element.line, a.offset)
            let kb = (rank[b.element.file] ?? rank.count, b.element.line, b.offset)
            return ka < kb
        }.map(\.element)
    }
}

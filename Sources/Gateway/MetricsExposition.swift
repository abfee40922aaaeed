/// Appends samples in Prometheus' text format (version 0.0.4) for the gauges read at scrape
/// time, whose label sets come and go with the state they show (a registry keeps every series
/// it ever saw).
struct MetricsExposition {
    var bytes: [UInt8]

    init(_ bytes: [UInt8] = []) { self.bytes = bytes }

    /// `# HELP` and `# TYPE` lines; once per metric name, before its samples.
    mutating func family(_ name: String, _ type: String, _ help: String) {
        bytes += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n".utf8
    }

    mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String> = [:], _ value: Double) {
        sample(name, Array(labels), value)
    }

    mutating func sample(_ name: String, _ labels: [(key: String, value: String)], _ value: Double) {
        bytes += name.utf8
        if !labels.isEmpty {
            bytes.append(UInt8(ascii: "{"))
            for (index, label) in labels.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                bytes += label.key.utf8
                bytes += #"=""#.utf8
                for byte in label.value.utf8 {
                    switch byte {
                    case UInt8(ascii: "\\"): bytes += #"\\"#.utf8
                    case UInt8(ascii: "\""): bytes += #"\""#.utf8
                    case UInt8(ascii: "\n"): bytes += #"\n"#.utf8
                    default: bytes.append(byte)
                    }
                }
                bytes.append(UInt8(ascii: "\""))
            }
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(UInt8(ascii: " "))
        bytes += Self.format(value).utf8
        bytes.append(UInt8(ascii: "\n"))
    }

    /// Whole numbers without a fraction; `+Inf`, `-Inf` and `NaN` as Prometheus spells them.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

import Prometheus

extension MetricNameDescriptor {
    /// A metric by its full name (`tokenctl_requests_total`): greppable in code, README and dashboards.
    static func named(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}

import Foundation
import Ledger
import Metering

/// Inline SVG charts for the html report: fixed sizes, no scripts, each shape with a `<title>`
/// holding its exact figure (a browser shows it on hover). Geometry uses doubles; every number
/// printed as text comes from the exact figures.
enum SVGCharts {
    /// Bars in the top-N charts; users stacked per day (the rest stacked as "others").
    static let maxBars = 10
    static let stackedUsers = 6

    static let palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]
    static let othersColour = "#bab0ac"

    /// Columns per local day, stacked by the period's top users and one "others" band.
    static func costPerDay(_ summary: ReportSummary) -> String {
        let days = summary.days
        guard !days.isEmpty else { return empty }
        let top = summary.users.prefix(stackedUsers).map(\.user)
        let (width, height, left, right, topMargin, bottom) = (960.0, 300.0, 80.0, 150.0, 12.0, 40.0)
        let plotWidth = width - left - right, plotHeight = height - topMargin - bottom
        let scale = Scale(max: days.map { dollars($0.cost) }.max() ?? 0)
        var svg = open(width, height, label: "Cost per day, stacked by top users")
        svg += scale.grid(left: left, right: width - right, top: topMargin, bottom: height - bottom)
        let slot = plotWidth / Double(days.count)
        let barWidth = max(1, slot * 0.8)
        let labelEvery = max(1, Int((Double(days.count) * 46 / plotWidth).rounded(.up)))
        for (index, day) in days.enumerated() {
            let x = left + Double(index) * slot + (slot - barWidth) / 2
            var y = height - bottom
            var others = day.cost
            var bands: [(String, String, Money.Total)] = []
            for (rank, user) in top.enumerated() {
                guard let cost = day.userCosts.first(where: { $0.user == user })?.cost else { continue }
                others.picodollars -= cost.picodollars
                bands.append((user, palette[rank % palette.count], cost))
            }
            if others.picodollars > 0 { bands.append(("others", othersColour, others)) }
            for (user, colour, cost) in bands {
                let h = scale.fraction(dollars(cost)) * plotHeight
                y -= h
                svg += rect(x, y, barWidth, h, colour, title: "\(day.day) \(user): \(DisplayText.dollars(cost))")
            }
            // An invisible column over the whole day carries the day's total on hover.
            svg += rect(x, topMargin, barWidth, height - bottom - topMargin, "none",
                        title: "\(day.day): \(DisplayText.dollars(day.cost)), \(day.activeUsers) active users")
            if index % labelEvery == 0 {
                svg += text(x + barWidth / 2, height - bottom + 16, String(day.day.dropFirst(5)), anchor: "middle")
            }
        }
        var legend = top.enumerated().map { ($1, palette[$0 % palette.count]) }
        if summary.users.count > top.count || days.contains(where: { day in
            day.cost.picodollars > day.userCosts.filter { top.contains($0.user) }.reduce(Int128(0)) { $0 + $1.cost.picodollars }
        }) {
            legend.append(("others", othersColour))
        }
        for (index, (user, colour)) in legend.enumerated() {
            let y = topMargin + 6 + Double(index) * 18
            svg += rect(width - right + 16, y, 10, 10, colour, title: user)
            svg += text(width - right + 32, y + 9, truncated(user, 18), anchor: "start")
        }
        return svg + "</svg>\n"
    }

    /// Horizontal bars, one per label, with the exact amount at the bar's end.
    static func bars(_ items: [(label: String, cost: Money.Total)]) -> String {
        guard !items.isEmpty else { return empty }
        let (width, left, right, row) = (460.0, 150.0, 100.0, 22.0)
        let height = Double(items.count) * row + 12
        let scale = Scale(max: items.map { dollars($0.cost) }.max() ?? 0)
        var svg = open(width, height, label: items.map(\.label).joined(separator: ", "))
        for (index, item) in items.enumerated() {
            let y = 6 + Double(index) * row
            let w = max(1, scale.fraction(dollars(item.cost)) * (width - left - right))
            svg += text(left - 6, y + 14, truncated(item.label, 22), anchor: "end")
            svg += rect(left, y + 3, w, row - 6, palette[0], title: "\(item.label): \(DisplayText.dollars(item.cost))")
            svg += text(left + w + 4, y + 14, DisplayText.dollars(item.cost), anchor: "start")
        }
        return svg + "</svg>\n"
    }

    /// p50 and p95 total latency per model (the models with timed calls, costliest first).
    static func latency(_ models: [ReportRow]) -> String {
        let rows = models.filter { $0.latencyP50Micros != nil || $0.latencyP95Micros != nil }.prefix(maxBars)
        guard !rows.isEmpty else { return empty }
        let (width, left, right, row) = (460.0, 150.0, 90.0, 34.0)
        let height = Double(rows.count) * row + 30
        let scale = Scale(max: rows.map { Double($0.latencyP95Micros ?? $0.latencyP50Micros ?? 0) / 1_000 }.max() ?? 0)
        var svg = open(width, height, label: "Latency p50 and p95 by model")
        for (index, model) in rows.enumerated() {
            let y = 6 + Double(index) * row
            svg += text(left - 6, y + 18, truncated(model.values[0], 22), anchor: "end")
            for (offset, name, colour, micros) in [(0.0, "p50", palette[0], model.latencyP50Micros),
                                                   (14.0, "p95", palette[1], model.latencyP95Micros)] {
                guard let micros else { continue }
                let ms = Decimal3.milliseconds(micros)
                let w = max(1, scale.fraction(Double(micros) / 1_000) * (width - left - right))
                svg += rect(left, y + offset + 2, w, 12, colour, title: "\(model.values[0]) \(name): \(ms) ms")
                svg += text(left + w + 4, y + offset + 12, "\(name) \(ms) ms", anchor: "start")
            }
        }
        let legendY = height - 12
        svg += rect(left, legendY - 9, 10, 10, palette[0], title: "p50") + text(left + 14, legendY, "p50", anchor: "start")
        svg += rect(left + 50, legendY - 9, 10, 10, palette[1], title: "p95") + text(left + 64, legendY, "p95", anchor: "start")
        return svg + "</svg>\n"
    }

    /// A linear scale from 0 to a round maximum, with 4–5 grid lines labelled in dollars.
    struct Scale {
        var top: Double
        var step: Double

        init(max value: Double) {
            guard value > 0 else { top = 1; step = 0.25; return }
            let raw = value / 4
            let magnitude = pow(10, floor(log10(raw)))
            step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
            top = (value / step).rounded(.up) * step
        }

        func fraction(_ value: Double) -> Double { top > 0 ? min(1, max(0, value / top)) : 0 }

        func grid(left: Double, right: Double, top y0: Double, bottom y1: Double) -> String {
            var svg = ""
            // As many decimals as the step needs: 0.25 → 2, 5 → 0.
            let decimals = (0...6).first { d in
                let scaled = step * pow(10, Double(d))
                return abs(scaled - scaled.rounded()) < 1e-6 * max(1, scaled)
            } ?? 6
            var value = 0.0
            while value <= top + step / 2 {
                let y = y1 - (value / top) * (y1 - y0)
                svg += "<line class=\"\(value == 0 ? "axis" : "grid")\" x1=\"\(n(left))\" y1=\"\(n(y))\" x2=\"\(n(right))\" y2=\"\(n(y))\"/>\n"
                svg += SVGCharts.text(left - 6, y + 4, "$" + String(format: "%.\(decimals)f", value), anchor: "end")
                value += step
            }
            return svg
        }
    }

    private static let empty = "<p class=\"empty\">(no data)</p>\n"

    private static func open(_ width: Double, _ height: Double, label: String) -> String {
        "<svg width=\"\(n(width))\" height=\"\(n(height))\" viewBox=\"0 0 \(n(width)) \(n(height))\" role=\"img\" aria-label=\"\(XML.escaped(label))\">\n"
    }

    private static func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, _ fill: String, title: String) -> String {
        "<rect x=\"\(n(x))\" y=\"\(n(y))\" width=\"\(n(w))\" height=\"\(n(h))\" fill=\"\(fill)\"><title>\(XML.escaped(title))</title></rect>\n"
    }

    static func text(_ x: Double, _ y: Double, _ content: String, anchor: String) -> String {
        "<text x=\"\(n(x))\" y=\"\(n(y))\" text-anchor=\"\(anchor)\">\(XML.escaped(content))</text>\n"
    }

    private static func truncated(_ label: String, _ length: Int) -> String {
        let flat = label.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
        return flat.count <= length ? flat : String(flat.prefix(length - 1)) + "…"
    }

    /// Dollars as a double, for geometry only.
    private static func dollars(_ total: Money.Total) -> Double { Double(total.picodollars) / 1e12 }

    /// A coordinate with at most one decimal.
    private static func n(_ value: Double) -> String {
        let tenths = (value * 10).rounded()
        return tenths.truncatingRemainder(dividingBy: 10) == 0 ? String(Int(tenths / 10)) : String(tenths / 10)
    }
}

import Foundation
import SluiceCore
import SluiceScaler

/// A pool's desired and running workers over time, drawn by the server as two step lines in an
/// SVG (the Scaling page's chart), and its recent decisions, from the supervisors' stream
/// (`ScalingEvents`): the last hour, or the stream's span when it is shorter.
struct DashboardScalingChart {
    /// The plot's box inside the SVG's 640×150 view: x 40…630, y 10 (top) … 120 (zero).
    static let left = 40.0
    static let right = 630.0
    static let top = 10.0
    static let bottom = 120.0

    /// `x,y` points of the two step lines; empty when no supervisor recorded anything.
    let desiredPoints: String
    let runningPoints: String
    /// The y axis' top figure, and the x axis' ends (UTC `HH:mm`).
    let peak: Int
    let start: String
    let end: String
    let hasHistory: Bool
    /// The pool's decisions in the window, newest first (at most 20).
    let decisions: [Decision]
    let hasDecisions: Bool

    struct Decision {
        let at: String
        let from: Int
        let desired: Int
        let workers: String
        /// Nil for a viewer who may not see reasons (they quote the lanes' backlogs).
        let reason: String?
    }

    /// The chart of `pool` from `events` (all pools', oldest first) and its last entry before the
    /// window (`before`), from `since` to `now`.
    init(pool: String, before: ScalingEvents.Event?, events: [ScalingEvents.Event], since: UnixMillis, now: UnixMillis, reasons: Bool) {
        let mine = events.filter { $0.pool == pool && $0.at <= now }
        let origin = before != nil ? since : (mine.first?.at ?? now)
        let span = max(1.0, Double(now.value) - Double(origin.value))
        var desired: [(Double, Int)] = []
        var running: [(Double, Int)] = []
        if let before {
            desired.append((0, before.desired))
            running.append((0, before.running))
        }
        for event in mine {
            let offset = min(span, max(0, Double(event.at.value) - Double(origin.value)))
            desired.append((offset, event.desired))
            running.append((offset, event.running))
        }
        let values = desired.map(\.1) + running.map(\.1)
        peak = max(1, values.max() ?? 1)
        desiredPoints = Self.steps(desired, span: span, peak: peak)
        runningPoints = Self.steps(running, span: span, peak: peak)
        hasHistory = !desired.isEmpty
        start = Self.clock(origin)
        end = Self.clock(now)
        decisions = mine.filter { $0.kind == .decision }.suffix(20).reversed().map {
            Decision(
                at: DashboardViews.time($0.at), from: $0.from, desired: $0.desired, workers: DashboardViews.shown($0.workers),
                reason: reasons ? $0.reason : nil)
        }
        hasDecisions = !decisions.isEmpty
    }

    /// The points of a step line through `values` (offsets in ms from the chart's start, each
    /// value held until the next), carried to the right edge.
    static func steps(_ values: [(offset: Double, value: Int)], span: Double, peak: Int) -> String {
        guard !values.isEmpty else { return "" }
        func x(_ offset: Double) -> Double { left + (right - left) * offset / span }
        func y(_ value: Int) -> Double { bottom - (bottom - top) * Double(max(0, value)) / Double(peak) }
        var points: [(Double, Double)] = [(x(values[0].offset), y(values[0].value))]
        for (previous, next) in zip(values, values.dropFirst()) {
            points.append((x(next.offset), y(previous.value)))
            points.append((x(next.offset), y(next.value)))
        }
        points.append((right, y(values[values.count - 1].value)))
        return points.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ")
    }

    /// `14:05` (UTC).
    static func clock(_ at: UnixMillis) -> String {
        var format = Date.FormatStyle(date: .omitted, time: .shortened)
        format.timeZone = TimeZone(identifier: "UTC") ?? .current
        format.locale = Locale(identifier: "en_GB")
        return Date(timeIntervalSince1970: Double(at.value) / 1000).formatted(format) + " UTC"
    }
}

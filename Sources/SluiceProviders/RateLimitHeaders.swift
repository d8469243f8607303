import Foundation
import SluiceCore

/// What a provider's answer says about its limits, from every spelling the providers use.
public struct RateLimitInfo: Sendable, Hashable {
    /// One limit's window: its size, what is left, and when it is whole again.
    public struct Window: Sendable, Hashable {
        public var limit: Int?
        public var remaining: Int?
        /// From the answer's arrival.
        public var reset: Duration?

        public init(limit: Int? = nil, remaining: Int? = nil, reset: Duration? = nil) {
            self.limit = limit
            self.remaining = remaining
            self.reset = reset
        }

        var isEmpty: Bool { limit == nil && remaining == nil && reset == nil }
    }

    /// `retry-after-ms`, else `retry-after` (seconds or an HTTP date), within
    /// `0...Bounded.maxPeerWait`.
    public var retryAfter: Duration?
    public var requests: Window?
    public var tokens: Window?
    /// The headers whose values were out of range (clamped) or meaningless (NaN, ignored), with
    /// what they said (cut to 40 characters): for a log line. Empty for a sane answer.
    public var adjusted: [Adjustment] = []

    /// A header value that was not taken as it came.
    public struct Adjustment: Sendable, Hashable {
        public var header: String
        public var value: String
        /// "clamped" or "ignored".
        public var action: String

        public init(header: String, value: String, action: String) {
            self.header = header
            self.value = value
            self.action = action
        }
    }

    public init(retryAfter: Duration? = nil, requests: Window? = nil, tokens: Window? = nil) {
        self.retryAfter = retryAfter
        self.requests = requests
        self.tokens = tokens
    }

    /// The range a limit or remaining count is clamped into.
    public static let countRange = 0...Bounded.maxAnnouncedLimit
    /// The range a wait (retry-after, a window's reset) is clamped into.
    public static let waitRange: ClosedRange<Duration> = .zero...Bounded.maxPeerWait

    /// Reads the headers (names case-insensitive). `now` is when the answer arrived, for the
    /// absolute times (HTTP dates, RFC 3339). Never traps: every number goes through `Bounded`;
    /// out-of-range values are clamped (`countRange`, `waitRange`) and NaN is ignored, each
    /// noted in `adjusted`.
    public init(headers: [(name: String, value: String)], now: Date = Date()) {
        var fields: [String: String] = [:]
        for (name, value) in headers { fields[name.lowercased()] = value.trimmingCharacters(in: .whitespaces) }
        var adjusted: [Adjustment] = []
        func note(_ header: String, _ value: String, _ action: String) {
            adjusted.append(Adjustment(header: header, value: String(value.prefix(40)), action: action))
        }
        /// A wait in seconds, clamped into `waitRange`; nil (noted) for NaN or a non-number.
        func wait(_ header: String, seconds: Double?, text: String) -> Duration? {
            guard let seconds, !seconds.isNaN else {
                note(header, text, "ignored")
                return nil
            }
            if seconds < 0 || seconds > Bounded.seconds(Self.waitRange.upperBound) { note(header, text, "clamped") }
            return Bounded.clampedPreciseDuration(seconds: seconds, to: Self.waitRange)
        }
        func count(_ header: String) -> Int? {
            guard let text = fields[header] else { return nil }
            guard let value = Bounded.clampedInt(text, to: Self.countRange) else {
                note(header, text, "ignored")
                return nil
            }
            if Int(text) != value { note(header, text, "clamped") }
            return value
        }
        /// An absolute time as a wait from `now`.
        func until(_ header: String, _ date: Date?, text: String) -> Duration? {
            guard let date else {
                note(header, text, "ignored")
                return nil
            }
            return wait(header, seconds: date.timeIntervalSince(now), text: text)
        }

        if let text = fields["retry-after-ms"], let milliseconds = Double(text), !milliseconds.isNaN {
            retryAfter = wait("retry-after-ms", seconds: milliseconds / 1000, text: text)
        } else {
            if let text = fields["retry-after-ms"] { note("retry-after-ms", text, "ignored") }
            if let text = fields["retry-after"] {
                if let seconds = Double(text) {
                    retryAfter = wait("retry-after", seconds: seconds, text: text)
                } else {
                    retryAfter = until("retry-after", Self.httpDate(text), text: text)
                }
            }
        }

        // OpenAI (and compatible servers): x-ratelimit-{limit,remaining,reset}-{requests,tokens},
        // resets as durations ("1s", "6m0s", "17ms").
        func openAI(_ kind: String) -> Window {
            let resetHeader = "x-ratelimit-reset-\(kind)"
            return Window(
                limit: count("x-ratelimit-limit-\(kind)"),
                remaining: count("x-ratelimit-remaining-\(kind)"),
                reset: fields[resetHeader].flatMap { text in
                    guard let seconds = Self.goSeconds(text) else {
                        note(resetHeader, text, "ignored")
                        return nil
                    }
                    return wait(resetHeader, seconds: seconds, text: text)
                })
        }
        // Anthropic: anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset},
        // resets as RFC 3339 times.
        func anthropic(_ kind: String) -> Window {
            let resetHeader = "anthropic-ratelimit-\(kind)-reset"
            return Window(
                limit: count("anthropic-ratelimit-\(kind)-limit"),
                remaining: count("anthropic-ratelimit-\(kind)-remaining"),
                reset: fields[resetHeader].flatMap { until(resetHeader, Self.rfc3339($0), text: $0) })
        }
        let requestWindows = [openAI("requests"), anthropic("requests")].filter { !$0.isEmpty }
        requests = requestWindows.first
        // Tokens: the tightest of the windows given (Anthropic may send input and output apart).
        let tokenWindows = [openAI("tokens"), anthropic("tokens"), anthropic("input-tokens"), anthropic("output-tokens")]
            .filter { !$0.isEmpty }
        tokens = tokenWindows.min { ($0.remaining ?? .max) < ($1.remaining ?? .max) }
        self.adjusted = adjusted
    }

    /// How long to hold off before the next call, from the most telling header: retry-after,
    /// else the reset of a window with nothing remaining. nil when the answer says nothing.
    /// Within `waitRange`.
    public var pause: Duration? {
        if let retryAfter { return retryAfter }
        let exhausted = [requests, tokens].compactMap { $0 }.filter { ($0.remaining ?? 1) <= 0 }.compactMap(\.reset)
        return exhausted.max()
    }

    /// Parses Go-style durations as OpenAI writes them: `17ms`, `1s`, `2.5s`, `6m0s`, `1h2m3s`.
    /// A value past `waitRange` is clamped to its top (`9999999999999h` is a day); nil for text
    /// that is not such a duration.
    public static func goDuration(_ text: String) -> Duration? {
        goSeconds(text).flatMap { Bounded.clampedPreciseDuration(seconds: $0, to: waitRange) }
    }

    /// The seconds of a Go-style duration (a double: a huge value is +inf, never a trap).
    static func goSeconds(_ text: String) -> Double? {
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        var total = 0.0
        var number = ""
        var index = text.startIndex
        var sawUnit = false
        while index < text.endIndex {
            let character = text[index]
            if character.isASCII && (character.isNumber || character == ".") {
                number.append(character)
                index = text.index(after: index)
                continue
            }
            guard let value = Double(number) else { return nil }
            let rest = text[index...]
            let (unit, length): (Double, Int) =
                if rest.hasPrefix("ms") { (0.001, 2) } else if rest.hasPrefix("us") || rest.hasPrefix("µs") { (0.000_001, 2) } else if rest.hasPrefix("ns") { (1e-9, 2) } else if rest.hasPrefix("h") { (3600, 1) } else if rest.hasPrefix("m") { (60, 1) } else if rest.hasPrefix("s") { (1, 1) } else { (-1, 0) }
            guard unit > 0 else { return nil }
            total += value * unit
            number = ""
            sawUnit = true
            index = text.index(index, offsetBy: length)
        }
        if !number.isEmpty {
            guard !sawUnit, let seconds = Double(number) else { return nil }  // a bare number: seconds
            total = seconds
        }
        return total.isNaN ? nil : total
    }

    /// Whether `text` may be handed to Foundation's date formatters: printable ASCII, at most 64
    /// bytes. Foundation's DateFormatter traps ("Incorrect range CFRange") on some non-ASCII
    /// text, which a provider's header can carry (the ratelimit fuzz target found
    /// `Wed, 21\u{7B0}ct 2015 07:28:00 GMT`).
    static func formattable(_ text: String) -> Bool {
        text.utf8.count <= 64 && text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
    }

    static func rfc3339(_ text: String) -> Date? {
        guard formattable(text) else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }

    static func httpDate(_ text: String) -> Date? {
        guard formattable(text) else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)
    }
}

import Foundation

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

    /// `retry-after-ms`, else `retry-after` (seconds or an HTTP date).
    public var retryAfter: Duration?
    public var requests: Window?
    public var tokens: Window?

    public init(retryAfter: Duration? = nil, requests: Window? = nil, tokens: Window? = nil) {
        self.retryAfter = retryAfter
        self.requests = requests
        self.tokens = tokens
    }

    /// Reads the headers (names case-insensitive). `now` is when the answer arrived, for the
    /// absolute times (HTTP dates, RFC 3339).
    public init(headers: [(name: String, value: String)], now: Date = Date()) {
        var fields: [String: String] = [:]
        for (name, value) in headers { fields[name.lowercased()] = value.trimmingCharacters(in: .whitespaces) }

        if let milliseconds = fields["retry-after-ms"].flatMap(Double.init), milliseconds >= 0 {
            retryAfter = .milliseconds(Int64(milliseconds.rounded(.up)))
        } else if let text = fields["retry-after"] {
            if let seconds = Double(text), seconds >= 0 {
                retryAfter = .milliseconds(Int64((seconds * 1000).rounded(.up)))
            } else if let date = Self.httpDate(text) {
                retryAfter = .milliseconds(Int64(max(0, date.timeIntervalSince(now)) * 1000))
            }
        }

        // OpenAI (and compatible servers): x-ratelimit-{limit,remaining,reset}-{requests,tokens},
        // resets as durations ("1s", "6m0s", "17ms").
        func openAI(_ kind: String) -> Window {
            Window(
                limit: fields["x-ratelimit-limit-\(kind)"].flatMap { Int($0) },
                remaining: fields["x-ratelimit-remaining-\(kind)"].flatMap { Int($0) },
                reset: fields["x-ratelimit-reset-\(kind)"].flatMap(Self.goDuration))
        }
        // Anthropic: anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset},
        // resets as RFC 3339 times.
        func anthropic(_ kind: String) -> Window {
            Window(
                limit: fields["anthropic-ratelimit-\(kind)-limit"].flatMap { Int($0) },
                remaining: fields["anthropic-ratelimit-\(kind)-remaining"].flatMap { Int($0) },
                reset: fields["anthropic-ratelimit-\(kind)-reset"].flatMap(Self.rfc3339).map {
                    .milliseconds(Int64(max(0, $0.timeIntervalSince(now)) * 1000))
                })
        }
        let requestWindows = [openAI("requests"), anthropic("requests")].filter { !$0.isEmpty }
        requests = requestWindows.first
        // Tokens: the tightest of the windows given (Anthropic may send input and output apart).
        let tokenWindows = [openAI("tokens"), anthropic("tokens"), anthropic("input-tokens"), anthropic("output-tokens")]
            .filter { !$0.isEmpty }
        tokens = tokenWindows.min { ($0.remaining ?? .max) < ($1.remaining ?? .max) }
    }

    /// How long to hold off before the next call, from the most telling header: retry-after,
    /// else the reset of a window with nothing remaining. nil when the answer says nothing.
    public var pause: Duration? {
        if let retryAfter { return retryAfter }
        let exhausted = [requests, tokens].compactMap { $0 }.filter { ($0.remaining ?? 1) <= 0 }.compactMap(\.reset)
        return exhausted.max()
    }

    /// Parses Go-style durations as OpenAI writes them: `17ms`, `1s`, `2.5s`, `6m0s`, `1h2m3s`.
    public static func goDuration(_ text: String) -> Duration? {
        var total = 0.0
        var number = ""
        var index = text.startIndex
        var sawUnit = false
        while index < text.endIndex {
            let character = text[index]
            if character.isNumber || character == "." {
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
        guard sawUnit || !text.isEmpty else { return nil }
        return .microseconds(Int64((total * 1e6).rounded()))
    }

    static func rfc3339(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }

    static func httpDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)
    }
}

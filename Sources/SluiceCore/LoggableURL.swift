import Foundation

/// A URL as it may be written to a log or an error: never its user or password, nor its
/// fragment; its query only when asked for, and then without a `password` item. Used for the
/// JWKS, the trace collector and the database, whose URLs may carry credentials.
public enum LoggableURL {
    /// nil when `url` does not parse as a URL (the caller says so in its own words).
    public static func string(_ url: String, keepingQuery: Bool = false) -> String? {
        guard var parts = URLComponents(string: url) else { return nil }
        parts.user = nil
        parts.password = nil
        parts.fragment = nil
        if keepingQuery {
            parts.queryItems = parts.queryItems?.filter { $0.name.lowercased() != "password" }
        } else {
            parts.query = nil
        }
        return parts.string
    }

    /// `string(url)`, or words saying it does not parse: for a log line that names the URL.
    public static func shown(_ url: String) -> String { string(url) ?? "(a URL that does not parse)" }
}

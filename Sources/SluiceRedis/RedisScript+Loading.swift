import Foundation

extension RedisScript {
    /// Why a script could not be loaded from a module's resources.
    public struct LoadingError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Loads `Scripts/<name>.lua` from a module's resources (`bundle`).
    ///
    /// - A line `--!include NAME` is replaced by `Scripts/includes/NAME`; includes may include
    ///   others, and each is pulled in once per script (the first time it is named), as BullMQ's
    ///   `includes/` are.
    /// - Each `${key}` is replaced by `constants[key]`: the values a script must agree on with
    ///   Swift (the key layout) are filled in here, from the one Swift type that defines them,
    ///   never spelled again in Lua. A `${…}` left without a value is an error, not a silent typo.
    ///
    /// Every module keeps its Lua in such files, never in Swift strings. The SHA-1 is that of the
    /// expanded source, so EVALSHA and the NOSCRIPT reload see the same script.
    public static func load(_ name: String, bundle: Bundle, constants: [String: String] = [:]) throws -> RedisScript {
        guard let directory = bundle.url(forResource: "Scripts", withExtension: nil) else { throw CocoaError(.fileNoSuchFile) }
        var included: Set<String> = []
        func expand(_ url: URL) throws -> [String] {
            let source = try String(contentsOf: url, encoding: .utf8)
            var lines = [String]()
            for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
                guard line.hasPrefix("--!include ") else {
                    lines.append(String(line))
                    continue
                }
                let include = line.dropFirst("--!include ".count).trimmingCharacters(in: .whitespaces)
                guard included.insert(include).inserted else { continue }
                lines += try expand(directory.appendingPathComponent("includes/\(include)"))
            }
            return lines
        }
        var source = try expand(directory.appendingPathComponent("\(name).lua")).joined(separator: "\n")
        for (key, value) in constants { source = source.replacingOccurrences(of: "${\(key)}", with: value) }
        if let range = source.range(of: "${") {
            let rest = source[range.lowerBound...].prefix { $0 != "}" && $0 != "\n" }
            throw LoadingError(description: "\(name).lua: no value for \(rest)}")
        }
        return RedisScript(name: name, source: source)
    }
}

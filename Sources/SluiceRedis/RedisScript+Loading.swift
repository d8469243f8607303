import Foundation

extension RedisScript {
    /// Loads `Scripts/<name>.lua` from a module's resources (`bundle`), replacing each line
    /// `--!include NAME` with `Scripts/includes/NAME`. Every module keeps its Lua in such files,
    /// never in Swift strings.
    public static func load(_ name: String, bundle: Bundle) throws -> RedisScript {
        guard let directory = bundle.url(forResource: "Scripts", withExtension: nil) else { throw CocoaError(.fileNoSuchFile) }
        let source = try String(contentsOf: directory.appendingPathComponent("\(name).lua"), encoding: .utf8)
        var expanded = [String]()
        for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("--!include ") {
                let include = line.dropFirst("--!include ".count).trimmingCharacters(in: .whitespaces)
                expanded.append(try String(contentsOf: directory.appendingPathComponent("includes/\(include)"), encoding: .utf8))
            } else {
                expanded.append(String(line))
            }
        }
        return RedisScript(name: name, source: expanded.joined(separator: "\n"))
    }
}

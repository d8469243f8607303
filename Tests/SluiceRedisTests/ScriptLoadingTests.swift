import Foundation
import SluiceRedis
import Testing

/// `RedisScript.load`: includes, each once, nested, and constants filled in, or an error.
@Suite struct ScriptLoadingTests {
    /// A bundle with `Scripts/` holding `files` (path -> text).
    private func bundle(_ files: [String: String]) throws -> Bundle {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("scripts-\(UUID().uuidString)")
        for (path, text) in files {
            let url = root.appendingPathComponent("Scripts/" + path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        return try #require(Bundle(path: root.path))
    }

    @Test func includesNestAreEachPulledInOnceAndConstantsAreFilledIn() throws {
        let bundle = try bundle([
            "job.lua": "--!include a.lua\n--!include b.lua\nreturn KEY .. B",
            "includes/a.lua": "--!include b.lua\nlocal KEY = '${root}x'",
            "includes/b.lua": "local B = '${n}'",
        ])
        let script = try RedisScript.load("job", bundle: bundle, constants: ["root": "sluice:", "n": "7"])
        #expect(script.source == "local B = '7'\nlocal KEY = 'sluice:x'\nreturn KEY .. B")
        #expect(script.sha1 == RedisScript(name: "job", source: script.source).sha1)
    }

    @Test func aPlaceholderWithoutAValueIsAnError() throws {
        let bundle = try bundle(["job.lua": "return '${root}' .. '${typo}'"])
        #expect(throws: RedisScript.LoadingError.self) { try RedisScript.load("job", bundle: bundle, constants: ["root": "s:"]) }
        #expect(throws: (any Error).self) { try RedisScript.load("missing", bundle: bundle) }
    }
}

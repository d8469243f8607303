import SluiceCore
@testable import SluiceQueue
import Testing

/// The Lua derives keys exactly as KeyLayout does, and spells no key name of its own.
@Suite struct ScriptKeyLayoutTests {
    @Test func theLuaFindsAJobsHomeTagWhereJobIDPutsIt() {
        let (first, last) = KeyLayout.idTagCharacters
        var random = SplitMix64(seed: 1)
        for lane in ["openai", "anthropic/claude-3-5-haiku-latest", "local", "a", String(repeating: "x", count: 300)] {
            let id = JobID.generate(lane: LaneTag(lane: lane), unixMillis: 1_700_000_000_000, using: &random)
            // string.sub(id, first, last) in Lua: 1-based, both ends included.
            let luaTag = String(id.rawValue.dropFirst(first - 1).prefix(last - first + 1))
            #expect(luaTag == id.laneTag.rawValue)
            #expect(KeyLayout.job(id) == KeyLayout.root + "{" + luaTag + "}:job:" + id.rawValue)
        }
    }

    @Test func keyNamesComeOnlyFromTheFilledInKeyInclude() {
        let scripts = QueueScripts.shared
        let all = [scripts.enqueue, scripts.lease, scripts.heartbeat, scripts.complete, scripts.fail, scripts.cancel,
            scripts.reap, scripts.promote, scripts.expire, scripts.laneStats, scripts.list, scripts.trimIndex,
            scripts.trimEvents, scripts.admit, scripts.release, scripts.divert]
        for script in all {
            #expect(!script.source.contains("${"), "\(script.name): a placeholder left unfilled")
            // keys.lua's five names (the root, the lanes set, the open-jobs hash, the runs stream
            // and the runs' prefix) are the only quoted key names, and each script pulls keys.lua
            // in at most once.
            let quoted = script.source.components(separatedBy: "'" + KeyLayout.root).count - 1
            let includesKeys = script.source.contains("local KEY_ROOT = '" + KeyLayout.root + "'")
            #expect(quoted == (includesKeys ? 5 : 0), "\(script.name): \(quoted) quoted key names")
        }
        #expect(scripts.divert.source.contains("local LANES = '" + KeyLayout.lanes + "'"))
        #expect(scripts.enqueue.source.contains("local OPEN_JOBS = '" + KeyLayout.openJobs + "'"))
        #expect(scripts.complete.source.contains("local RUN_EVENTS = '" + KeyLayout.runEvents + "'"))
    }
}

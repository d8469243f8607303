import Foundation
import SluiceRedis

/// The queue's Lua scripts, read from the package's `Scripts/` resources. A line
/// `--!include NAME` is replaced by `Scripts/includes/NAME` when a script is loaded, and the key
/// layout's names (`${name}` in `includes/keys.lua`) are filled in from `KeyLayout`.
struct QueueScripts: Sendable {
    let enqueue: RedisScript
    let lease: RedisScript
    let heartbeat: RedisScript
    let complete: RedisScript
    let fail: RedisScript
    let cancel: RedisScript
    let reap: RedisScript
    let promote: RedisScript
    let expire: RedisScript
    let laneStats: RedisScript
    let list: RedisScript
    let trimIndex: RedisScript
    let trimEvents: RedisScript
    let admit: RedisScript
    let release: RedisScript
    let divert: RedisScript

    static let shared: QueueScripts = {
        do {
            return try QueueScripts()
        } catch {
            // The scripts ship inside the package; without them the build itself is broken.
            fatalError("Sluice's Lua scripts are missing from the bundle: \(error)")
        }
    }()

    private init() throws {
        enqueue = try Self.load("enqueue")
        lease = try Self.load("lease")
        heartbeat = try Self.load("heartbeat")
        complete = try Self.load("complete")
        fail = try Self.load("fail")
        cancel = try Self.load("cancel")
        reap = try Self.load("reap")
        promote = try Self.load("promote")
        expire = try Self.load("expire")
        laneStats = try Self.load("lane-stats")
        list = try Self.load("list")
        trimIndex = try Self.load("trim-index")
        trimEvents = try Self.load("trim-events")
        divert = try Self.load("divert")
        admit = try Self.load("admit")
        release = try Self.load("release")
    }

    static func load(_ name: String) throws -> RedisScript {
        try RedisScript.load(name, bundle: Bundle.module, constants: KeyLayout.scriptConstants)
    }
}

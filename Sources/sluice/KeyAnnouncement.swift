import Foundation
import SluiceQueue

/// Announces a key changed by `sluice keys` to the running web processes (`KeyChanges`), so that
/// it is in force there at once rather than when their cached entry lapses (10 s by default).
/// Best effort: the change is made in the database either way. Without `redis.url` (`sluice up`'s
/// embedded Redis) nothing is announced; a configured Redis that cannot be reached gets a note on
/// stderr saying how long the web processes may take.
func announceKeyChange(_ options: ConfigurationOptions, prefix: String) async {
    func note(_ text: String) { FileHandle.standardError.write(Data("note: \(text)\n".utf8)) }
    guard let configuration = try? options.load(), let url = configuration.redis.url else { return }
    do {
        let redis = try await connectRedis(url, configuration)
        defer { redis.close() }
        try await KeyChanges(redis: redis).announce(prefix: prefix)
    } catch {
        note("the change could not be announced through Redis (\(error)); web processes apply it within their key cache's lifetime")
    }
}

/// The "did you mean" of a configuration key that is not known: the nearest known key by edit
/// distance (a swap of two neighbouring letters counts as one edit), when it is near enough to
/// be a typo rather than another word.
public enum SettingSuggestion {
    /// The known key nearest to `unknown` within two edits (one for keys of four letters or
    /// fewer), or nil. Keys longer than 64 characters get none: the work stays bounded whatever
    /// a file holds.
    public static func nearest(to unknown: String, among known: some Sequence<String>) -> String? {
        let typed = Array(unknown.lowercased().utf8)
        guard !typed.isEmpty, typed.count <= 64 else { return nil }
        var best: (key: String, distance: Int)?
        for key in known.sorted() {
            let candidate = Array(key.lowercased().utf8)
            guard candidate.count <= 64, (typed.count - 2...typed.count + 2).contains(candidate.count) else { continue }
            let distance = editDistance(typed, candidate)
            let allowed = min(typed.count, candidate.count) <= 4 ? 1 : 2
            if distance <= allowed, distance < (best?.distance ?? .max) { best = (key, distance) }
        }
        return best?.key
    }

    /// "; did you mean queue.lease_duration?" for the key at `path` (or "" when none is near).
    public static func didYouMean(_ unknown: String, among known: some Sequence<String>, path: String) -> String {
        guard let key = nearest(to: unknown, among: known) else { return "" }
        return "; did you mean \(path.isEmpty ? key : path + "." + key)?"
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
    /// neighbours, each one edit. Both arrays are at most 64 long (checked by the caller).
    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], previous2[j - 2] + 1)
                }
            }
            (previous2, previous, current) = (previous, current, previous2)
        }
        return previous[b.count]
    }
}

/// Finds one value in JSON text without decoding it: the mock provider's quick look at a
/// request's `model` and `max_tokens`. The first occurrence anywhere counts, nested or not, which
/// is good enough for a test double and wrong for anything else (Sluice itself reads top-level
/// members with `JSONScanner`).
enum JSONPeek {
    /// The value token after the first `key` (given with its quotes, as `"model"`) that is
    /// followed by a colon: a string token (with its quotes and escapes) or a bare number; nil
    /// when there is none. The first occurrence anywhere in the text counts, nested or not.
    static func token(after key: StaticString, in bytes: UnsafeBufferPointer<UInt8>) -> ArraySlice<UInt8>? {
        let needle = UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
        guard bytes.count > needle.count else { return nil }
        var index = 0
        search: while index + needle.count <= bytes.count {
            for offset in 0..<needle.count where bytes[index + offset] != needle[offset] {
                index += 1
                continue search
            }
            var cursor = skipSpace(bytes, index + needle.count)
            guard cursor < bytes.count, bytes[cursor] == UInt8(ascii: ":") else {
                index += 1
                continue
            }
            cursor = skipSpace(bytes, cursor + 1)
            let start = cursor
            if cursor < bytes.count, bytes[cursor] == UInt8(ascii: "\"") {
                cursor += 1
                while cursor < bytes.count, bytes[cursor] != UInt8(ascii: "\"") {
                    cursor += bytes[cursor] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard cursor < bytes.count else { return nil }
                return Array(bytes[start...cursor])[...]
            }
            while cursor < bytes.count, (48...57).contains(bytes[cursor]) || bytes[cursor] == UInt8(ascii: "-") { cursor += 1 }
            return cursor > start ? Array(bytes[start..<cursor])[...] : nil
        }
        return nil
    }

    /// The whole number after `key`, if there is one.
    static func int(after key: StaticString, in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        token(after: key, in: bytes).flatMap { Int(String(decoding: $0, as: UTF8.self)) }
    }

    private static func skipSpace(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int) -> Int {
        var cursor = start
        while cursor < bytes.count, bytes[cursor] == 32 || bytes[cursor] == 9 || bytes[cursor] == 10 || bytes[cursor] == 13 { cursor += 1 }
        return cursor
    }
}

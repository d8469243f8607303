import Foundation
import SluiceCore
import SluiceQueue
import Testing

@testable import SluiceHTTP

@Suite struct JSONScannerTests {
    /// Whether the scanner accepts `text` as one JSON document.
    func accepts(_ text: String) -> Bool {
        accepts(Array(text.utf8))
    }

    func accepts(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { buffer in
            var scanner = JSONScanner(buffer)
            return (try? scanner.document()) != nil
        }
    }

    @Test func agreesWithJSONSerializationOnValidityOfManyDocuments() {
        let documents = [
            "{}", "[]", "0", "-0", "1.5e10", "-12.25E-3", #""a""#, "true", "false", "null", " { \"a\" : [1, 2, {\"b\": null}] } ",
            #"{"a":"\u00e9\ud83d\ude00\n\"\\\/"}"#, "{\"é\": \"ü\"}", "[[[[[]]]]]",
            // invalid
            "", " ", "{", "}", "{a:1}", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "[1 2]",
            "{\"a\" 1}", "\"abc", "\"\\x\"", "\"\\u12G4\"", "\"a\u{01}b\"", "{} {}", "[1]]", "'a'", "NaN", "Infinity",
        ]
        for document in documents {
            let expected = (try? JSONSerialization.jsonObject(with: Data(document.utf8), options: [.fragmentsAllowed])) != nil
            #expect(accepts(document) == expected, "\(document.debugDescription)")
        }
        // Stricter than Foundation on Linux, which takes trailing commas: RFC 8259 does not.
        #expect(!accepts("[1,]"))
        #expect(!accepts("{\"a\":1,}"))
    }

    @Test func refusesInvalidUTF8AndExcessiveNesting() {
        #expect(!accepts([0x22, 0xC3, 0x22]))  // a lead byte without its continuation
        #expect(!accepts([0x22, 0xED, 0xA0, 0x80, 0x22]))  // an encoded surrogate
        #expect(!accepts([0x22, 0xC0, 0xAF, 0x22]))  // an overlong "/"
        #expect(accepts([0x22, 0xF0, 0x9F, 0x98, 0x80, 0x22]))  // 😀
        #expect(accepts(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)))
        #expect(!accepts(String(repeating: "[", count: 65) + String(repeating: "]", count: 65)))
    }

    @Test func membersKeepTheirBytesAndKeysAreDecoded() throws {
        let text = #"{"l\u0061ne": "d\"emo", "request": {"b": [1, 2],  "a": "x"}, "n": 1e3}"#
        let bytes = Array(text.utf8)
        try bytes.withUnsafeBufferPointer { buffer in
            var scanner = JSONScanner(buffer)
            var members: [(key: Range<Int>, value: JSONScanner.Value)] = []
            try scanner.objectMembers { (key, value) throws(Never) in members.append((key, value)) }
            #expect(members.map { JSONScanner.decodeString(buffer, $0.key) } == ["lane", "request", "n"])
            #expect(JSONScanner.stringToken(buffer, members[0].key, equals: "lane"))  // written l\u0061ne
            #expect(!JSONScanner.stringToken(buffer, members[2].key, equals: "lane"))
            #expect(JSONScanner.decodeString(buffer, members[0].value.range) == "d\"emo")
            #expect(String(decoding: buffer[members[1].value.range], as: UTF8.self) == #"{"b": [1, 2],  "a": "x"}"#)
            #expect(members[1].value.kind == .object)
            #expect(JSONScanner.wholeNumber(buffer, members[2].value.range) == 1000)
        }
    }
}

@Suite struct JobDocumentTests {
    @Test func handWrittenAcceptedBodyIsWhatJSONSerializationWouldWrite() throws {
        let id = JobID.generate(lane: LaneTag(lane: "demo"), unixMillis: 1_700_000_000_123)
        let written = JobDocument.accepted(id, state: .delayed, createdAt: UnixMillis(1_700_000_000_123))
        let reference = try JSONSerialization.data(
            withJSONObject: [
                "id": id.rawValue, "object": "job", "status": "delayed", "created_at": 1_700_000_000,
                "links": JobDocument.links(id),
            ] as [String: Any], options: [.sortedKeys, .withoutEscapingSlashes])
        #expect(String(decoding: written, as: UTF8.self) == String(decoding: reference, as: UTF8.self))
    }
}

@Suite struct BulkDocumentTests {
    @Test func handWrittenBulkBodyIsWhatJSONSerializationWouldWrite() throws {
        let ids = (0..<3).map { JobID.generate(lane: LaneTag(lane: "b"), unixMillis: Int64($0)) }
        let results = [EnqueueResult(id: ids[0], created: true), EnqueueResult(id: ids[1], created: false), EnqueueResult(id: ids[2], created: true)]
        let reference = try JSONSerialization.data(
            withJSONObject: [
                "object": "list", "count": 3,
                "data": results.map { ["id": $0.id.rawValue, "created": $0.created] as [String: Any] },
            ] as [String: Any], options: [.sortedKeys])
        #expect(String(decoding: JobDocument.bulkAccepted(results), as: UTF8.self) == String(decoding: reference, as: UTF8.self))
    }
}

@testable import SluiceClient
import Testing

/// The CLI's SSE parser (`sluice status --follow`, `sluice batch --wait`) on what a server sends.
@Suite(.timeLimit(.minutes(1))) struct EventStreamParserTests {
    static let stream = Array("retry: 2000\n: connected\n\nid: 1\nevent: status\ndata: {\"a\":1}\n\n: ping\n\nevent: end\ndata: x\ndata: y\n\n".utf8)

    @Test func eventsCutAtEveryByteReadTheSameAsWhole() throws {
        var whole = EventStreamParser()
        let expected = try whole.feed(Self.stream).map { "\($0.id ?? "-") \($0.event) \($0.data)" }
        #expect(expected == ["1 status {\"a\":1}", "- end x\ny"])
        for cut in 0...Self.stream.count {
            var parser = EventStreamParser()
            let events = try parser.feed(Self.stream[..<cut]) + parser.feed(Self.stream[cut...])
            #expect(events.map { "\($0.id ?? "-") \($0.event) \($0.data)" } == expected, "cut at \(cut)")
        }
        // One byte at a time.
        var parser = EventStreamParser()
        var events: [ServerSentEvent] = []
        for byte in Self.stream { events += try parser.feed([byte]) }
        #expect(events.map { "\($0.id ?? "-") \($0.event) \($0.data)" } == expected)
    }

    /// A large event in small reads is scanned once (each read rescanned everything pending:
    /// 8 MiB in 256-byte reads was some 10^11 byte comparisons, minutes in a debug build).
    @Test func aLargeEventInSmallReadsIsReadInLinearTime() throws {
        var parser = EventStreamParser()
        let chunk = Array(repeating: UInt8(ascii: "x"), count: 256)
        #expect(try parser.feed(Array("event: big\ndata: ".utf8)).isEmpty)
        for _ in 0..<(8 << 20) / 256 { #expect(try parser.feed(chunk).isEmpty) }
        let events = try parser.feed(Array("\n\n".utf8))
        #expect(events.count == 1)
        #expect(events.first?.event == "big")
        #expect(events.first?.data.utf8.count == 8 << 20)
        // Past 16 MiB pending, the parser refuses rather than holds more.
        var hostile = EventStreamParser()
        #expect(throws: (any Error).self) { for _ in 0..<(17 << 20) / (1 << 20) { _ = try hostile.feed(Array(repeating: UInt8(ascii: "y"), count: 1 << 20)) } }
    }
}

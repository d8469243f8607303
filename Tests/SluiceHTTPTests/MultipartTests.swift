import Testing

@testable import SluiceHTTP

@Suite struct MultipartTests {
    @Test func partsAreSplitWithTheirNamesFilenamesAndBinaryContent() throws {
        #expect(try Multipart.boundary(contentType: #"multipart/form-data; boundary="abc123""#) == "abc123")
        #expect(try Multipart.boundary(contentType: "multipart/form-data; charset=utf-8; Boundary=abc123") == "abc123")
        #expect(try Multipart.boundary(contentType: "application/json") == nil)
        let content: [UInt8] = Array("line 1\r\n--abc12 not the boundary\n".utf8) + [0, 255]
        let body =
            Array("--abc123\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n".utf8)
            + Array("--abc123\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in;put.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n".utf8)
            + content + Array("\r\n--abc123--\r\n".utf8)
        let form = try Multipart(body, boundary: "abc123")
        #expect(form.parts.map(\.name) == ["purpose", "file"])
        #expect(try #require(form.part("purpose")).content == Array("batch".utf8))
        #expect(form.part("file")?.filename == "in;put.jsonl")
        #expect(try #require(form.part("file")).content == content)
    }

    @Test func aBodyThatIsNotWellFormedIsRefused() {
        #expect(throws: Multipart.Problem.unterminated) { try Multipart(Array("no boundary here".utf8), boundary: "abc") }
        #expect(throws: Multipart.Problem.unterminated) {
            try Multipart(Array("--abc\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nunterminated".utf8), boundary: "abc")
        }
        #expect(throws: Multipart.Problem.malformed) { try Multipart(Array("--abc\r\nno colon here\r\n\r\nx\r\n--abc--".utf8), boundary: "abc") }
    }

    @Test func aBodyWithoutItsClosingBoundaryIsRefused() throws {
        let open = "--b1\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
        // Stopping after a whole part, inside the next part's headers, or just after a delimiter.
        for body in [open, open + "--b1", open + "--b1\r\n", open + "--b1\r\nContent-Disposition: form-da", open + "--b1\r\nX: y\r\n\r\nhalf"] {
            #expect(throws: Multipart.Problem.unterminated, "\(body.debugDescription)") { try Multipart(Array(body.utf8), boundary: "b1") }
        }
        #expect(try Multipart(Array((open + "--b1--").utf8), boundary: "b1").parts.count == 1)
        #expect(try Multipart(Array((open + "--b1--\r\nan epilogue, ignored").utf8), boundary: "b1").parts.count == 1)
    }

    @Test func aFilePartIsFoundAmongOthers() throws {
        let body =
            "preamble, ignored\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            + "--XyZ\r\nContent-Type: text/plain\r\n\r\na part without a name\r\n"
            + "--XyZ\r\ncontent-disposition: form-data; name=file; filename=\"batch.jsonl\"\r\n\r\n{\"custom_id\":\"1\"}\n{\"custom_id\":\"2\"}\n\r\n"
            + "--XyZ--\r\n"
        let form = try Multipart(Array(body.utf8), boundary: "XyZ")
        #expect(form.parts.map(\.name) == ["note", "file"])
        let file = try #require(form.part("file"))
        #expect(file.filename == "batch.jsonl")
        #expect(String(decoding: file.content, as: UTF8.self) == "{\"custom_id\":\"1\"}\n{\"custom_id\":\"2\"}\n")
    }

    @Test func aBoundaryLongerThan70BytesIsRefusedFromTheHeaderAlone() throws {
        let seventy = String(repeating: "-", count: 70)
        #expect(try Multipart.boundary(contentType: "multipart/form-data; boundary=\(seventy)") == seventy)
        let long = String(repeating: "-", count: 8_000)
        #expect(throws: Multipart.Problem.boundaryTooLong(8_000)) { try Multipart.boundary(contentType: "multipart/form-data; boundary=\(long)") }
        #expect(throws: Multipart.Problem.boundaryTooLong(71)) { try Multipart([], boundary: seventy + "-") }
        #expect(Multipart.Problem.boundaryTooLong(8_000).message.contains("70"))
        #expect(throws: Multipart.Problem.noBoundary) { try Multipart.boundary(contentType: "multipart/form-data") }
        #expect(throws: Multipart.Problem.boundaryCharacters) { try Multipart.boundary(contentType: "multipart/form-data; boundary=a\rb") }
    }

    /// The old parser searched for the delimiter from every position (8,000 dashes against 5 MB of
    /// dashes took 14.5 s). The longest boundary allowed against a body built to make a naive
    /// search restart at every byte must simply complete (each byte is looked at once).
    @Test func aBodyBuiltForAQuadraticSearchIsHandled() throws {
        let boundary = String(repeating: "-", count: 70)
        let filler = Array(repeating: UInt8(ascii: "-"), count: 5 << 20)
        let head = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n".utf8)
        // Also runs of "\r\n" + 69 dashes: a near-delimiter over and over.
        let near = Array(repeating: Array("\r\n--\(String(repeating: "-", count: 69))x".utf8), count: 20_000).joined()
        let body = head + filler + near + Array("\r\n--\(boundary)--\r\n".utf8)
        let form = try Multipart(body, boundary: boundary)
        #expect(form.part("file")?.content.count == filler.count + near.count)
        #expect(throws: Multipart.Problem.unterminated) { try Multipart(head + filler, boundary: boundary) }
    }

    /// Found by `make fuzz` (Tests/Fuzz/corpus/multipart/crash-header-name-high-byte): multipart-kit
    /// 4.7.1 traps on a byte of 0x80 or more in a part's header name, which took the whole
    /// process down. Such a body is refused as malformed before the parser sees it.
    @Test func aNonASCIIByteInAHeaderNameIsRefusedNotATrap() throws {
        let found = Array(
            "--abc123\r\nContent-Disposition: form-\u{0}x\r\n\u{8D}\r\nbatch\r\n--abc123--".utf8)
        #expect(throws: Multipart.Problem.malformed) { try Multipart(found, boundary: "abc123") }
        for name in ["\u{E9}t\u{E9}", "X-\u{FF}", "\u{80}"] {
            let body = "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--b\r\n\(name): v\r\n\r\ny\r\n--b--"
            #expect(throws: Multipart.Problem.malformed) { try Multipart(Array(body.utf8), boundary: "b") }
        }
        // Non-ASCII elsewhere is fine: in a header's value (a UTF-8 filename) and in content.
        let body = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d\u{E9}j\u{E0}.jsonl\"\r\n\r\n\u{E9}: \u{FF}\r\n--b--"
        let form = try Multipart(Array(body.utf8), boundary: "b")
        #expect(form.part("file")?.filename == "d\u{E9}j\u{E0}.jsonl")
        #expect(form.part("file")?.content == Array("\u{E9}: \u{FF}".utf8))
    }

    @Test func tooManyPartsAreRefused() {
        let part = "--p\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n"
        let body = String(repeating: part, count: Multipart.maxParts + 1) + "--p--"
        #expect(throws: Multipart.Problem.tooManyParts) { try Multipart(Array(body.utf8), boundary: "p") }
    }
}

import Testing

@testable import SluiceHTTP

@Suite struct MultipartTests {
    @Test func partsAreSplitWithTheirNamesFilenamesAndBinaryContent() throws {
        #expect(Multipart.boundary(contentType: #"multipart/form-data; boundary="abc123""#) == "abc123")
        #expect(Multipart.boundary(contentType: "application/json") == nil)
        let content: [UInt8] = Array("line 1\r\n--abc12 not the boundary\n".utf8) + [0, 255]
        let body =
            Array("--abc123\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n".utf8)
            + Array("--abc123\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n".utf8)
            + content + Array("\r\n--abc123--\r\n".utf8)
        let form = try #require(Multipart(body, boundary: "abc123"))
        #expect(form.parts.map(\.name) == ["purpose", "file"])
        #expect(Array(try #require(form.part("purpose")).content) == Array("batch".utf8))
        #expect(form.part("file")?.filename == "in.jsonl")
        #expect(Array(try #require(form.part("file")).content) == content)
    }

    @Test func aBodyThatIsNotWellFormedIsRefused() {
        #expect(Multipart(Array("no boundary here".utf8), boundary: "abc") == nil)
        #expect(Multipart(Array("--abc\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nunterminated".utf8), boundary: "abc") == nil)
    }
}

import MultipartKit
import NIOCore

/// A `multipart/form-data` body (RFC 7578), split into its parts: enough for `/v1/files`.
///
/// The bytes are read by multipart-kit's streaming parser, which looks at each byte once: a
/// boundary search never restarts further back than the byte it is on, because a boundary is
/// checked here first to be at most 70 characters of RFC 2046's set (no CR or LF, so no partial
/// match can overlap another). A hostile body therefore costs time linear in its size, and an
/// over-long boundary is refused from the header alone, before any byte of the body is read.
struct Multipart {
    struct Part {
        var name: String
        var filename: String?
        var content: [UInt8]
    }

    /// Why a body cannot be taken as multipart/form-data; `message` is what the 400 says.
    enum Problem: Error, Equatable {
        case noBoundary
        case boundaryTooLong(Int)
        case boundaryCharacters
        case malformed
        case unterminated
        case tooManyParts

        var message: String {
            switch self {
            case .noBoundary: "the multipart Content-Type names no boundary"
            case .boundaryTooLong(let length):
                "the multipart boundary is \(length) bytes; RFC 2046 allows at most \(Multipart.maxBoundaryLength)"
            case .boundaryCharacters: "the multipart boundary may hold only letters, digits, spaces and '()+_,-./:=? (RFC 2046)"
            case .malformed: "the multipart body is not well formed"
            case .unterminated: "the multipart body has no closing boundary (--boundary--)"
            case .tooManyParts: "the multipart body has more than \(Multipart.maxParts) parts"
            }
        }
    }

    /// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
    static let maxBoundaryLength = 70
    /// `/v1/files` takes two fields; a body of thousands of empty parts is refused.
    static let maxParts = 32

    var parts: [Part] = []

    /// The boundary named by a Content-Type header: nil when it is not multipart/form-data,
    /// thrown when it is but its boundary is missing, too long or not of RFC 2046's characters.
    static func boundary(contentType: String) throws(Problem) -> String? {
        let pieces = parameters(contentType)
        guard let type = pieces.first?.name, type.lowercased() == "multipart/form-data" else { return nil }
        guard let boundary = pieces.dropFirst().first(where: { $0.name.lowercased() == "boundary" })?.value, !boundary.isEmpty else {
            throw .noBoundary
        }
        guard boundary.utf8.count <= maxBoundaryLength else { throw .boundaryTooLong(boundary.utf8.count) }
        guard boundary.utf8.allSatisfy(isBoundaryCharacter), boundary.utf8.last != UInt8(ascii: " ") else {
            throw .boundaryCharacters
        }
        return boundary
    }

    /// Splits `body` at `boundary` (one that `boundary(contentType:)` accepted).
    init(_ body: [UInt8], boundary: String) throws(Problem) {
        try self.init(ByteBuffer(bytes: body), boundary: boundary)
    }

    /// Splits `body` at `boundary` (one that `boundary(contentType:)` accepted).
    init(_ body: ByteBuffer, boundary: String) throws(Problem) {
        guard !boundary.isEmpty else { throw .noBoundary }
        guard boundary.utf8.count <= Self.maxBoundaryLength else { throw .boundaryTooLong(boundary.utf8.count) }
        guard boundary.utf8.allSatisfy(Self.isBoundaryCharacter) else { throw .boundaryCharacters }

        let trap = body.withUnsafeReadableBytes { Self.reachesHeaderNameTrap($0, boundary: Array("\r\n--\(boundary)".utf8)) }
        guard !trap else { throw .malformed }

        let parser = MultipartParser(boundary: boundary)
        var parts: [Part] = []
        var headers: [(name: String, value: String)] = []
        var content: [UInt8] = []
        var count = 0
        parser.onHeader = { name, value in headers.append((name, value)) }
        parser.onBody = { buffer in content.append(contentsOf: buffer.readableBytesView) }
        parser.onPartComplete = {
            defer {
                headers = []
                content = []
            }
            count += 1
            guard count <= Self.maxParts else { return }
            // A part without a name (no Content-Disposition) is no form field: skipped.
            guard let disposition = headers.first(where: { $0.name.lowercased() == "content-disposition" })?.value else { return }
            let fields = Self.parameters(disposition).dropFirst()
            guard let name = fields.first(where: { $0.name.lowercased() == "name" })?.value else { return }
            let filename = fields.first(where: { $0.name.lowercased() == "filename" })?.value
            parts.append(Part(name: name, filename: filename, content: content))
        }
        do { try parser.execute(body) } catch { throw .malformed }
        if count > Self.maxParts { throw .tooManyParts }

        // multipart-kit accepts a body that simply stops; the closing delimiter is required here.
        // Its parser ignores whatever follows the closing delimiter (the epilogue) and in every
        // other state reacts to a NUL, CR, NUL probe (body bytes, a part's end, or a syntax
        // error), so a silent probe after a finished part means the body was closed properly.
        var closed = true
        parser.onHeader = { _, _ in closed = false }
        parser.onBody = { _ in closed = false }
        parser.onPartComplete = { closed = false }
        do { try parser.execute([0x00, 0x0D, 0x00]) } catch { closed = false }
        guard closed, count > 0 else { throw .unterminated }
        guard !parts.isEmpty else { throw .malformed }
        self.parts = parts
    }

    func part(_ name: String) -> Part? { parts.first { $0.name == name } }

    /// Whether multipart-kit's parser (4.7.1) would meet a byte of 0x80 or more in a part's
    /// header name: it looks header-name bytes up in a 128-entry table, so such a byte traps and
    /// takes the whole process down (found by `make fuzz`). This walks the body once with the
    /// parser's own states (its preamble match, body, delimiter and header states) and stops at
    /// the first such byte. Where the parser would throw instead, the answer does not matter:
    /// the body is refused as malformed either way.
    static func reachesHeaderNameTrap(_ body: UnsafeRawBufferPointer, boundary delimiter: [UInt8]) -> Bool {
        enum State { case preamble(Int), preHeaders(Bool), name(Bool), value, postValue, postHeaders, body, delimiter(Int) }
        let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        var state = State.preamble(0)
        for byte in body {
            switch state {
            case .preamble(var index):
                // As the parser does: a first byte of "--" may skip the delimiter's CRLF.
                if index == 0, byte == delimiter[2] {
                    index = 3
                } else if byte == delimiter[index] {
                    index += 1
                } else if index > 0, byte == delimiter[0] {
                    index = 1
                } else {
                    index = 0
                }
                state = index >= delimiter.count ? .preHeaders(false) : .preamble(index)
            case .preHeaders(let sawCR):
                if !sawCR, byte == cr { state = .preHeaders(true) } else if sawCR, byte == lf { state = .name(true) } else { return false }
            case .name(let empty):
                if byte >= 0x80 { return true }
                if byte == UInt8(ascii: ":"), !empty { state = .value } else if byte == cr, empty { state = .postHeaders } else { state = .name(false) }
            case .value:
                if byte == cr { state = .postValue }
            case .postValue:
                guard byte == lf else { return false }
                state = .name(true)
            case .postHeaders:
                guard byte == lf else { return false }
                state = .body
            case .body:
                if byte == cr { state = .delimiter(1) }
            case .delimiter(let index):
                if index >= delimiter.count {
                    // After a whole delimiter: CR starts the next part's headers, "-" the end.
                    guard byte == cr else { return false }
                    state = .preHeaders(true)
                } else if byte == delimiter[index] {
                    state = .delimiter(index + 1)
                } else {
                    state = byte == cr ? .delimiter(1) : .body
                }
            }
        }
        return false
    }

    /// `value; name=token; name="quoted; string"` as (name, value) pairs, the first being the
    /// value itself (with an empty name swapped in: `(value, "")`). Quoted strings keep
    /// semicolons and take backslash escapes.
    static func parameters(_ header: String) -> [(name: String, value: String)] {
        var result: [(name: String, value: String)] = []
        var piece: [UInt8] = []
        var quoted = false
        var escaped = false
        var pieces: [[UInt8]] = []
        for byte in header.utf8 {
            if escaped {
                piece.append(byte)
                escaped = false
            } else if quoted && byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\"") {
                quoted.toggle()
                piece.append(byte)
            } else if byte == UInt8(ascii: ";") && !quoted {
                pieces.append(piece)
                piece = []
            } else {
                piece.append(byte)
            }
        }
        pieces.append(piece)
        for (index, bytes) in pieces.enumerated() {
            let text = String(decoding: bytes, as: UTF8.self).trimmingSpaces
            if index == 0 {
                result.append((text, ""))
                continue
            }
            guard let equals = text.firstIndex(of: "=") else { continue }
            let name = String(text[..<equals]).trimmingSpaces
            var value = String(text[text.index(after: equals)...]).trimmingSpaces
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            result.append((name, value))
        }
        return result
    }

    /// bchars of RFC 2046: letters, digits, space and '()+_,-./:=?
    private static func isBoundaryCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): true
        default: "'()+_,-./:=? ".utf8.contains(byte)
        }
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}

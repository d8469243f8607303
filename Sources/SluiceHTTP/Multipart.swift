import Foundation

/// A `multipart/form-data` body, split into its parts (RFC 7578): enough for `/v1/files`.
struct Multipart {
    struct Part {
        var name: String
        var filename: String?
        var content: ArraySlice<UInt8>
    }

    var parts: [Part] = []

    /// The boundary named by a Content-Type header, nil when it is not multipart/form-data.
    static func boundary(contentType: String) -> String? {
        guard contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if pair.count == 2, pair[0].lowercased() == "boundary" {
                return String(pair[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    /// Splits `body` at `boundary`; nil when it is not well formed.
    init?(_ body: [UInt8], boundary: String) {
        let delimiter = Array(("--" + boundary).utf8)
        let separator = Array("\r\n\r\n".utf8)
        var position = 0
        guard let first = Self.find(delimiter, in: body, from: 0) else { return nil }
        position = first + delimiter.count
        while true {
            // After a delimiter: "--" ends the body; else a CRLF, the part's headers and content.
            if body[position...].starts(with: Array("--".utf8)) { return }
            guard body[position...].starts(with: Array("\r\n".utf8)) else { return nil }
            position += 2
            guard let headersEnd = Self.find(separator, in: body, from: position) else { return nil }
            let headers = String(decoding: body[position..<headersEnd], as: UTF8.self)
            let contentStart = headersEnd + separator.count
            guard let next = Self.find(Array("\r\n".utf8) + delimiter, in: body, from: contentStart) else { return nil }
            var name: String?
            var filename: String?
            for line in headers.split(separator: "\r\n") where line.lowercased().hasPrefix("content-disposition:") {
                name = Self.parameter("name", in: String(line))
                filename = Self.parameter("filename", in: String(line))
            }
            if let name { parts.append(Part(name: name, filename: filename, content: body[contentStart..<next])) }
            position = next + 2 + delimiter.count
        }
    }

    func part(_ name: String) -> Part? { parts.first { $0.name == name } }

    private static func parameter(_ name: String, in header: String) -> String? {
        for piece in header.split(separator: ";").dropFirst() {
            let pair = piece.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if pair.count == 2, pair[0].lowercased() == name {
                return String(pair[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    /// The index of `needle` in `haystack` at or after `start`.
    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        let first = needle[0]
        var index = start
        let last = haystack.count - needle.count
        while index <= last {
            if haystack[index] == first && haystack[index..<index + needle.count].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}

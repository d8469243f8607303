import Foundation
import Testing

/// The README is the doorway and docs/ the manual (issue 19): every relative link in them leads to
/// a file that exists (and to a heading that exists, when it names one), the README stays short,
/// and the index links every page.
@Suite struct DocsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL

    /// README.md and every docs/*.md, as paths relative to the package's root.
    static func pages() throws -> [String] {
        let docs = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
        return ["README.md"] + docs.filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
    }

    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// The lines outside fenced code blocks, with their numbers in the file.
    static func prose(_ text: String) -> [(number: Int, line: String)] {
        var inFence = false
        var lines: [(Int, String)] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.hasPrefix("```") {
                inFence.toggle()
                continue
            }
            if !inFence { lines.append((index + 1, String(line))) }
        }
        return lines
    }

    /// GitHub's anchor for a heading: lowercased, letters, digits, `-` and `_` kept, spaces made
    /// `-`, anything else dropped; a repeated heading gets `-1`, `-2`, ….
    static func anchors(_ text: String) -> Set<String> {
        var seen: [String: Int] = [:]
        var result: Set<String> = []
        for (_, line) in prose(text) {
            let hashes = line.prefix { $0 == "#" }.count
            guard (1...6).contains(hashes), line.dropFirst(hashes).hasPrefix(" ") else { continue }
            var slug = ""
            for character in line.dropFirst(hashes + 1).lowercased() {
                if character == " " {
                    slug.append("-")
                } else if character.isLetter || character.isNumber || character == "-" || character == "_" {
                    slug.append(character)
                }
            }
            let count = seen[slug, default: 0]
            seen[slug] = count + 1
            result.insert(count == 0 ? slug : "\(slug)-\(count)")
        }
        return result
    }

    /// The targets of the Markdown links (`[text](target)`) outside code, with their line numbers.
    static func links(_ text: String) -> [(line: Int, target: String)] {
        var found: [(Int, String)] = []
        for (number, line) in prose(text) {
            // Inline code (`…`) is not a link.
            var plain = ""
            var inCode = false
            for character in line {
                if character == "`" { inCode.toggle(); continue }
                if !inCode { plain.append(character) }
            }
            var rest = Substring(plain)
            while let open = rest.range(of: "](") {
                let after = rest[open.upperBound...]
                guard let close = after.firstIndex(of: ")") else { break }
                found.append((number, String(after[..<close])))
                rest = after[close...]
            }
        }
        return found
    }

    @Test func everyRelativeLinkLeadsToAFileAndHeadingThatExist() throws {
        var broken: [String] = []
        var checked = 0
        for page in try Self.pages() {
            let text = try Self.text(page)
            for (line, target) in Self.links(text) {
                if target.contains("://") || target.hasPrefix("mailto:") { continue }
                let parts = target.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
                let path = String(parts[0])
                let anchor = parts.count > 1 ? String(parts[1]) : nil
                let resolved = path.isEmpty
                    ? page
                    : URL(fileURLWithPath: page, relativeTo: Self.root).deletingLastPathComponent()
                        .appendingPathComponent(path).standardizedFileURL.path
                        .replacingOccurrences(of: Self.root.path + "/", with: "")
                checked += 1
                guard FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(resolved).path) else {
                    broken.append("\(page):\(line): \(target): no file \(resolved)")
                    continue
                }
                if let anchor, resolved.hasSuffix(".md"), !Self.anchors(try Self.text(resolved)).contains(anchor) {
                    broken.append("\(page):\(line): \(target): no heading #\(anchor) in \(resolved)")
                }
            }
        }
        #expect(checked > 100, "the links were not found: \(checked)")
        #expect(broken.isEmpty, "\(broken.joined(separator: "\n"))")
    }

    @Test func theReadmeIsADoorway() throws {
        let readme = try Self.text("README.md")
        let lines = readme.split(separator: "\n", omittingEmptySubsequences: false).count
        #expect(lines < 200, "README.md has \(lines) lines: the manual belongs in docs/")
        #expect(readme.contains("](docs/README.md)"), "the README links the documentation's index")
    }

    @Test func theIndexLinksEveryPage() throws {
        let index = Set(Self.links(try Self.text("docs/README.md")).map { $0.target.split(separator: "#")[0] })
        let pages = try Self.pages().filter { $0.hasPrefix("docs/") && $0 != "docs/README.md" }
        #expect(pages.count >= 15)
        let missing = pages.map { String($0.dropFirst("docs/".count)) }.filter { !index.contains(Substring($0)) }
        #expect(missing.isEmpty, "pages the index does not link: \(missing)")
    }

    @Test func theAnchorsAreGitHubs() {
        #expect(Self.anchors("## `make bench`: one run, one table\n## Live events (SSE)\n## A\n## A")
            == ["make-bench-one-run-one-table", "live-events-sse", "a", "a-1"])
        #expect(Self.anchors("```\n# not a heading\n```\n#nor this") == [])
    }
}

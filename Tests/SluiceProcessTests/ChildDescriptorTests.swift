import Foundation
import Testing

@testable import SluiceProcess

/// A child starts with only its standard input, output and error: none of this process's other
/// descriptors (sockets, the build lock, pipes not marked close-on-exec) leak into it, so a
/// connection closed here is closed for its peer while a child lives.
@Suite struct ChildDescriptorTests {
    @Test func aChildInheritsOnlyItsStandardDescriptors() async throws {
        // A pipe without close-on-exec, as many descriptors are.
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-fds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("fds").path
        // `ls` lists the descriptors open in the child (the one it reads the directory through
        // among them, whatever its number).
        let child = try ChildProcess.spawn("sh", arguments: ["-c", "exec ls /proc/self/fd"], outputPath: output)
        #expect(await child.waitForExit(timeout: .seconds(30)) == 0)
        let listed = try String(contentsOfFile: output, encoding: .utf8).split(whereSeparator: \.isNewline).compactMap { Int32($0) }
        #expect(!listed.contains(ends[0]) && !listed.contains(ends[1]), "the pipe leaked into the child: \(listed)")
        #expect(listed.filter { $0 > 2 }.count <= 1, "only ls's own directory descriptor beyond 0–2: \(listed)")
    }
}

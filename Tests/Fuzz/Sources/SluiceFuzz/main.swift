// Sluice's fuzz targets, as one program: `SluiceFuzz <target> [libFuzzer flags] [corpus folders]`.
//
// Built for fuzzing (`make fuzz`: the code instrumented with -sanitize=fuzzer, FUZZING defined,
// libFuzzer's no-main runtime linked), it hands the target to libFuzzer. Built plainly (`swift
// build`), it replays the files and folders it is given through the target: a crash file found by
// the fuzzer can be rerun under a debugger that way.
//
// One program rather than one per target: the targets share most of Sluice, and one link of it
// is what keeps the fuzz build short. SwiftPM renames an executable's `main` (so that tests can
// link it) and libFuzzer's own `main` would collide with it, so this `main` starts libFuzzer
// through LLVMFuzzerRunDriver instead.

#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import CFuzzDriver

/// The target this process runs: the first argument (taken off before libFuzzer sees the
/// arguments), else `SLUICE_FUZZ_TARGET` (which libFuzzer's child processes inherit).
nonisolated(unsafe) var selected: FuzzTarget! = nil

var arguments = CommandLine.arguments
if arguments.count > 1, let target = FuzzTarget.named(arguments[1]) {
    selected = target
    arguments.remove(at: 1)
    setenv("SLUICE_FUZZ_TARGET", target.name, 1)
} else if let name = ProcessInfo.processInfo.environment["SLUICE_FUZZ_TARGET"], let target = FuzzTarget.named(name) {
    selected = target
} else {
    FileHandle.standardError.write(
        Data("usage: SluiceFuzz <target> [libFuzzer flags] [corpus folders]; targets: \(FuzzTarget.all.map(\.name).joined(separator: ", "))\n".utf8))
    exit(2)
}

#if FUZZING
    // libFuzzer keeps argv for its child processes and reports: a C array that lives as long as
    // the process does.
    var argc = CInt(arguments.count)
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = UnsafeMutablePointer.allocate(capacity: arguments.count + 1)
    for (index, argument) in arguments.enumerated() { argv![index] = strdup(argument) }
    argv![arguments.count] = nil
    exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        selected.run(UnsafeBufferPointer(start: data, count: size))
        return 0
    })
#else
    // Replay: every file named, and every file in every folder named.
    var count = 0
    for path in arguments.dropFirst() {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { continue }
        let files =
            isFolder.boolValue
            ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 } : [path]
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            Array(data).withUnsafeBufferPointer { selected.run($0) }
            count += 1
        }
    }
    print("\(selected.name): \(count) inputs replayed, none crashed")
#endif

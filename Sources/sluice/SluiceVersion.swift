/// What `sluice --version` prints: the release's number and the commit it was built from.
///
/// The commit is baked in by the Makefile (`make build`, `release`, `run`, `install`), which
/// writes `BuildCommit.swift` (git-ignored) beside this file with a `BakedBuildCommit`
/// conformance. A plain `swift build` without that file (a tarball, no git) still builds, and
/// its commit reads "unknown"; one after a `make` keeps the last commit `make` baked.
enum SluiceVersion {
    /// The release number; the same as the OpenAPI document's `info.version`.
    static let number = "0.1.0"

    /// The commit (`git rev-parse --short=12 HEAD`, `-dirty` when files differ from it), or
    /// "unknown" when the build did not record one.
    static var commit: String {
        (SluiceVersion.self as Any.Type as? any BakedBuildCommit.Type)?.bakedCommit ?? "unknown"
    }

    /// `0.1.0 (commit 3f2a9c1b7d40)`.
    static var description: String { "\(number) (commit \(commit))" }
}

/// The conformance the generated `BuildCommit.swift` adds to `SluiceVersion`; looked up at run
/// time, so that the build needs no file and no compiler flag when there is no commit to bake.
protocol BakedBuildCommit {
    static var bakedCommit: String { get }
}

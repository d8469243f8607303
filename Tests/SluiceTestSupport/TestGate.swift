import Foundation

/// Which tests a run takes beyond what a plain `swift test` needs (Redis, SQLite, the package's
/// own binaries): the suites that drive Python clients (the official SDKs in the venv of
/// `make venv`), a headless browser, several `sluice` processes at once, or that need a quiet
/// machine (`make test` runs those alone, the Makefile's HEAVY list).
///
/// They run when `SLUICE_TEST_E2E=1` is set, as `make test` does; otherwise they are skipped and
/// say how to run them. Each such suite carries
/// `.enabled(if: TestGate.endToEnd, "needs …: run `make test`, or `make venv` then SLUICE_TEST_E2E=1 swift test")`.
public enum TestGate {
    /// The environment variable that enables the end-to-end and heavy suites.
    public static let variable = "SLUICE_TEST_E2E"

    /// Whether the end-to-end and heavy suites run (`SLUICE_TEST_E2E` set to anything but
    /// empty or `0`).
    public static var endToEnd: Bool {
        guard let value = ProcessInfo.processInfo.environment[variable] else { return false }
        return !value.isEmpty && value != "0"
    }
}

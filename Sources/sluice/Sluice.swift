import ArgumentParser

/// The `sluice` command. It only wires modules together; the logic lives in them.
@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "An asynchronous, queue-backed inference broker.",
        discussion: """
            Exit codes: 0 success; 1 a check failed (doctor); 2 bad configuration or arguments; \
            3 Redis or a child process could not be reached or started.
            """,
        subcommands: [Up.self, Serve.self, Doctor.self, Keys.self]
    )
}

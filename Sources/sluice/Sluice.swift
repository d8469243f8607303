import ArgumentParser

/// The `sluice` command. It only wires modules together; the logic lives in them.
@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "An asynchronous, queue-backed inference broker.",
        discussion: """
            Exit codes: 0 success; 1 a check failed (doctor), a job did not succeed (wait, batch --wait) or had \
            already finished (cancel) or may not be retried (retry); 2 bad configuration, arguments or request (HTTP 400/413/415/422); \
            3 Redis, the API or a child process could not be reached or started (or answered 5xx); \
            4 the API key was refused (401/403); 5 no such job (404); 6 wait --timeout ran out; \
            7 over the key's limits (429).
            """,
        version: SluiceVersion.description,
        subcommands: [
            Up.self, Serve.self, Work.self, Submit.self, Batch.self, Status.self, Wait.self, Cancel.self, Retry.self, Queues.self,
            Usage.self, Keys.self, Doctor.self, Migrate.self, MockProviderCommand.self, Autoscale.self,
        ]
    )
}

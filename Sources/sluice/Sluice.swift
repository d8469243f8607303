import ArgumentParser

@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "An asynchronous, queue-backed inference broker.",
        subcommands: []
    )
}

import Foundation
import SluiceProcess
import SluiceRedis
import SluiceTestSupport
import Testing

@Suite struct MockProviderCommandTests {
    @Test func servesOnTheNamedPortAndStopsOnSigterm() async throws {
        let work = NSTemporaryDirectory() + "sluice-mock-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let log = work + "/mock.log"
        let mock = try ChildProcess.spawn(
            try sluiceBinary(), arguments: ["mock-provider", "--port", "0", "--latency", "5ms", "--rpm", "100"], outputPath: log)
        defer { mock.signal(SIGKILL) }
        let ready = await eventually(timeout: .seconds(20)) { contents(of: log).contains("mock provider on http://") }
        try #require(ready, "\(contents(of: log))")
        let port = try #require(
            contents(of: log).range(of: "127.0.0.1:").flatMap { range in Int(contents(of: log)[range.upperBound...].prefix { $0.isNumber }) })
        #expect(try await httpStatus("http://127.0.0.1:\(port)/healthz") == 200)
        #expect(try await httpStatus("http://127.0.0.1:\(port)/stats") == 200)
        mock.signal(SIGTERM)
        #expect(await mock.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test func badSettingsAreExitCode2() async throws {
        let work = NSTemporaryDirectory() + "sluice-mock-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let (status, output) = try await runSluice(["mock-provider", "--port", "0", "--latency", "fast"], in: work)
        #expect(status == 2)
        #expect(output.contains("latency 'fast'"), "\(output)")
        let (rates, ratesOutput) = try await runSluice(["mock-provider", "--port", "0", "--error-rate", "0.8", "--reset-rate", "0.5"], in: work)
        #expect(rates == 2 && ratesOutput.contains("add up to more than 1"), "\(ratesOutput)")
        let (delay, delayOutput) = try await runSluice(["mock-provider", "--port", "0", "--batch-delay", "soon"], in: work)
        #expect(delay == 2 && delayOutput.contains("--batch-delay 'soon'"), "\(delayOutput)")
        let (expire, expireOutput) = try await runSluice(["mock-provider", "--port", "0", "--error-rate", "0.6", "--batch-expire-rate", "0.6"], in: work)
        #expect(expire == 2 && expireOutput.contains("--batch-expire-rate"), "\(expireOutput)")
        let (create, createOutput) = try await runSluice(["mock-provider", "--port", "0", "--batch-create-delay", "2h"], in: work)
        #expect(create == 2 && createOutput.contains("--batch-create-delay must be between 0 and 1h"), "\(createOutput)")
        let (word, wordOutput) = try await runSluice(["mock-provider", "--port", "0", "--batch-create-delay", "later"], in: work)
        #expect(word == 2 && wordOutput.contains("--batch-create-delay 'later'"), "\(wordOutput)")
    }
}

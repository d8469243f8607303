import SluiceCore
import Testing

/// Inputs `make fuzz` found to trap the configuration reader (Tests/Fuzz/pending/config/).
///
/// `Yams.load(yaml:)` force-unwraps every mapping key as a String, so a key that is itself a
/// sequence or a mapping (`{[a]: b}`, or `? key: value` as an explicit key) traps instead of
/// throwing. Disabled while it still traps: a trap would end the whole test process. Once
/// `SluiceConfiguration.load` and `WorkerPoolDefinition.load` refuse such keys (say, by
/// `Yams.compose` and a check that every mapping key is a scalar before `Yams.load`), enable
/// these and move the inputs into Tests/Fuzz/corpus/config/.
@Suite struct ConfigurationFuzzRegressionTests {
    static let nonScalarKeys = [
        "{[a]: b}\n",
        "server:\n  ? {port: 1}\n  : 2\n",
        "autoscale:\n? up_cooldown: 5s\n  down_cooldown: 60s\n",
    ]

    @Test(.disabled("traps in Yams until the reader checks mapping keys (issue 11, item 10)"), arguments: nonScalarKeys)
    func aMappingKeyThatIsNotAScalarIsAConfigurationError(yaml: String) {
        #expect(throws: ConfigurationError.self) { try SluiceConfiguration.load(yaml: yaml) }
        #expect(throws: ConfigurationError.self) { try WorkerPoolDefinition.load(yaml: yaml, file: "pool.yaml") }
    }
}

import SluiceCore
import Testing

/// Inputs `make fuzz` found to trap the configuration reader (now in Tests/Fuzz/corpus/config/).
///
/// `Yams.load(yaml:)` force-unwraps every mapping key as a String, so a key that is itself a
/// sequence or a mapping (`{[a]: b}`, or `? key: value` as an explicit key) traps instead of
/// throwing. `SluiceConfiguration.loadYAML` composes the document first and refuses such keys
/// with a `ConfigurationError`; the inputs are in Tests/Fuzz/corpus/config/.
@Suite struct ConfigurationFuzzRegressionTests {
    static let nonScalarKeys = [
        "{[a]: b}\n",
        "server:\n  ? {port: 1}\n  : 2\n",
        "autoscale:\n? up_cooldown: 5s\n  down_cooldown: 60s\n",
    ]

    @Test(arguments: nonScalarKeys)
    func aMappingKeyThatIsNotAScalarIsAConfigurationError(yaml: String) {
        #expect(throws: ConfigurationError.self) { try SluiceConfiguration.load(yaml: yaml) }
        #expect(throws: ConfigurationError.self) { try WorkerPoolDefinition.load(yaml: yaml, file: "pool.yaml") }
    }
}

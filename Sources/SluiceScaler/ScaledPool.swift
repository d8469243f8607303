import Foundation
import SluiceCore

/// A pool the autoscaler sizes: its name (the file's base name) and its definition.
public struct ScaledPool: Sendable {
    public var name: String
    public var definition: WorkerPoolDefinition

    public init(name: String, definition: WorkerPoolDefinition) {
        self.name = name
        self.definition = definition
    }

    /// The pools of `workers/*.yaml` in `directory`, by name.
    public static func load(directory: String) throws -> [ScaledPool] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return try files.filter { $0.hasSuffix(".yaml") }.sorted().map { file in
            let path = directory + "/" + file
            let text = try String(contentsOfFile: path, encoding: .utf8)
            return ScaledPool(name: String(file.dropLast(5)), definition: try WorkerPoolDefinition.load(yaml: text, file: path))
        }
    }
}

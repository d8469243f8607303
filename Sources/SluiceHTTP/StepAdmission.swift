import SluiceCore

extension KeyAdmission {
    /// Admits a pipeline's steps as jobs `key` submitted would be: each step's lane (every target
    /// of a route) and priority, through `checkJobs`. A step whose target resolves to no lane
    /// throws `unresolved(step index)`; a refusal is rethrown with `name(step index, &error)`
    /// applied when it concerns one step (the bulk check's `jobs[N]: ` taken off its message,
    /// or the pipeline has one step), as it is otherwise. Used when a pipeline is defined and
    /// when a run is created.
    func checkSteps(
        _ pipeline: Pipeline, key: APIKey, unresolved: (Int) -> APIError, name: (Int, inout APIError) -> Void
    ) async throws {
        let directory = self.directory
        var specs: [JobSpec] = []
        for (index, step) in pipeline.steps.enumerated() {
            guard let (lane, route, _) = directory.lane(for: step.target) else { throw unresolved(index) }
            var spec = JobSpec(lane: lane, tenant: key.tenant, priority: step.priority ?? 0, payload: [])
            spec.route = route
            specs.append(spec)
        }
        do { try await checkJobs(specs, key: key) } catch var error as APIError {
            var index: Int? = pipeline.steps.count == 1 ? 0 : nil
            if let range = error.message.range(of: #"^jobs\[(\d+)\]: "#, options: .regularExpression),
                let found = Int(error.message[range].dropFirst(5).prefix { $0.isNumber }), pipeline.steps.indices.contains(found)
            {
                index = found
                error.message = String(error.message[range.upperBound...])
            }
            if let index { name(index, &error) }
            throw error
        }
    }
}

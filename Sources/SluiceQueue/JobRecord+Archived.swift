import SluiceCore

extension JobRecord {
    /// The jobs of archived records (`JobRecord.encoded`, by id, as the archive keeps them), by
    /// id; a record that does not read as a job is left out.
    public static func jobs(archived records: [JobID: [UInt8]]) -> [String: Job] {
        var jobs: [String: Job] = [:]
        jobs.reserveCapacity(records.count)
        for (id, encoded) in records {
            guard let job = try? JobRecord(id: id, encoded: encoded)?.job() else { continue }
            jobs[id.rawValue] = job
        }
        return jobs
    }
}

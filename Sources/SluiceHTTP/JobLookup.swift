import Hummingbird
import SluiceCore
import SluiceQueue
import SluiceStore

/// A job as a key may see it: from Redis while it is live, from the archive once it has left
/// Redis (its result TTL passed). Another tenant's job is 404 unless the key is admin.
struct JobLookup: Sendable {
    let queue: JobQueue
    let archive: ArchiveStore

    /// The job as Redis holds it, if the key may see it; nil when it is not in Redis (it may be
    /// archived: see `archived`); 404 when it is another tenant's.
    func live(_ id: JobID, by key: APIKey) async throws -> Job? {
        guard let job = try await queue.get(id) else { return nil }
        guard job.tenant == key.tenant || key.scopes.contains(.admin) else { throw APIError.notFound }
        return job
    }

    /// A job that has left Redis, from the archive: rendered from its hash as Redis held it, so
    /// the JSON is what it was. 404 when it is not archived either, or is another tenant's.
    func archived(_ id: JobID, by key: APIKey) async throws -> (document: Response, events: [TimelineEntry], state: String) {
        guard let archived = try await archive.job(id), archived.tenant == key.tenant || key.scopes.contains(.admin),
            let record = JobRecord(id: id, encoded: archived.record)
        else { throw APIError.notFound }
        let job = try record.job()
        return (JobDocument.response(job), record.timeline() ?? [], job.state.rawValue)
    }

    /// 404 unless the job, live or archived, is one the key may see.
    func requireVisible(_ id: JobID, by key: APIKey) async throws {
        if try await live(id, by: key) == nil { _ = try await archived(id, by: key) }
    }
}

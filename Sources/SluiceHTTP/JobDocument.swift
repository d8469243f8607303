import Foundation
import Hummingbird
import SluiceCore
import SluiceQueue

/// The job's JSON answers. A job itself is `JobResource` (SluiceCore), written by its one
/// encoder; this adds the HTTP responses around it and the submit path's 202 answers, written
/// directly (the hot paths).
enum JobDocument {
    /// `GET /v1/jobs/{id}` (and a cancel's answer): the job's resource.
    static func response(_ job: Job) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: JobResource(job).encoded)))
    }

    /// `GET /v1/jobs`: `{"data": [job…], "has_more", "next_cursor", "object": "list"}`, each job
    /// spliced from its resource.
    static func list(_ jobs: [Job], nextCursor: String?) -> Response {
        var bytes = Array(#"{"data":["#.utf8)
        for (index, job) in jobs.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += JobResource(job).encoded
        }
        bytes += Array(#"],"has_more":\#(nextCursor != nil),"next_cursor":"#.utf8)
        if let nextCursor { JSONObjectWriter.appendString(nextCursor, to: &bytes) } else { bytes += Array("null".utf8) }
        bytes += Array(#","object":"list"}"#.utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// The 202 answer to a submit (and to a retry): `{created_at, id, links, object, status}`,
    /// the job's own fields written as `JobResource.encoded` writes them (the same writer, the
    /// same links, the same times), so they are the same bytes as in `GET /v1/jobs/{id}`.
    static func accepted(_ id: JobID, state: JobState, createdAt: UnixMillis) -> [UInt8] {
        var writer = JSONObjectWriter(capacity: 220)
        writer.int("created_at", seconds(createdAt))
        writer.string("id", id.rawValue)
        let links = JobResource.links(id)
        writer.object("links") { inner in
            inner.string("cancel", links.cancel)
            inner.string("events", links.events)
            inner.string("self", links.path)
        }
        writer.string("object", "job")
        writer.string("status", state.rawValue)
        return writer.finished()
    }

    /// The 202 answer to a bulk submit, written directly: `{"count", "data": [{"created",
    /// "id"}…], "object": "list"}`, keys sorted (JSONSerialization took 3/4 of a bulk's time).
    static func bulkAccepted(_ results: [EnqueueResult]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(40 + results.count * 60)
        bytes += Array(#"{"count":\#(results.count),"data":["#.utf8)
        for (index, result) in results.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += result.created ? Self.createdTrue : Self.createdFalse
            bytes += result.id.rawValue.utf8
            bytes += Self.entryEnd
        }
        bytes += Array(#"],"object":"list"}"#.utf8)
        return bytes
    }

    private static let createdTrue = Array(#"{"created":true,"id":""#.utf8)
    private static let createdFalse = Array(#"{"created":false,"id":""#.utf8)
    private static let entryEnd = Array(#""}"#.utf8)

    static func links(_ id: JobID) -> [String: String] {
        let links = JobResource.links(id)
        return ["self": links.path, "cancel": links.cancel, "events": links.events]
    }

    static func seconds(_ time: UnixMillis) -> Int64 { JobResource.seconds(time) }
}

import Foundation
import SluiceCore
import Testing

@Suite struct JobResourceTests {
    static func job(
        payload: String = #"{"model": "gpt-4o-mini",  "messages": [{"role": "user", "content": "hi \/ there"}]}"#,
        result: String? = #"{"id":"x","usage":{"prompt_tokens":3}}"#, metadata: String = ""
    ) -> Job {
        var job = Job(
            id: JobID.generate(lane: LaneTag(lane: "openai"), unixMillis: 1_763_000_000_123), lane: "openai", tenant: "t",
            priority: 7, state: .succeeded, payload: Array(payload.utf8), attempts: 2, maxAttempts: 5, idempotencyKey: "idem \"1\"",
            metadata: Array(metadata.utf8), createdAt: UnixMillis(1_763_000_000_123), notBefore: UnixMillis(1_763_000_001_000),
            deadline: UnixMillis(1_763_000_900_999), leasedAt: UnixMillis(1_763_000_002_500), finishedAt: UnixMillis(1_763_000_003_000),
            result: result.map { Array($0.utf8) }, error: "an earlier attempt: HTTP 500", cancelRequested: false)
        job.usageInput = 3
        job.usageOutput = 9
        return job
    }

    /// The renderer HTTP had before JobResource (a `[String: Any]` through JSONSerialization),
    /// kept here as the reference the resource must match in names, types and values.
    static func earlierDocument(_ job: Job) -> [String: Any] {
        func seconds(_ time: UnixMillis) -> Int64 { time.value / 1000 }
        let id = job.id.rawValue
        var document: [String: Any] = [
            "id": id, "object": "job", "status": job.state.rawValue, "lane": job.lane, "priority": job.priority,
            "attempts": job.attempts, "max_attempts": job.maxAttempts, "created_at": seconds(job.createdAt),
            "links": ["self": "/v1/jobs/\(id)", "cancel": "/v1/jobs/\(id)/cancel", "events": "/v1/jobs/\(id)/events"],
        ]
        document["request"] = (try? JSONSerialization.jsonObject(with: Data(job.payload))) ?? NSNull()
        if let notBefore = job.notBefore { document["not_before"] = seconds(notBefore) }
        if let deadline = job.deadline { document["deadline"] = seconds(deadline) }
        if let started = job.leasedAt { document["started_at"] = seconds(started) }
        if let finished = job.finishedAt { document["finished_at"] = seconds(finished) }
        if let result = job.result {
            document["result"] = (try? JSONSerialization.jsonObject(with: Data(result))) ?? String(decoding: result, as: UTF8.self)
        }
        if let error = job.error { document["error"] = error }
        if let input = job.usageInput, let output = job.usageOutput { document["usage"] = ["input_tokens": input, "output_tokens": output] }
        if job.cancelRequested && !job.state.isTerminal { document["cancel_requested"] = true }
        if !job.metadata.isEmpty, let envelope = try? JSONSerialization.jsonObject(with: Data(job.metadata)) as? [String: Any] {
            if let metadata = envelope["metadata"] { document["metadata"] = metadata }
            if let callback = envelope["callback_url"] { document["callback_url"] = callback }
            if let route = envelope["route"] { document["route"] = route }
        }
        if let key = job.idempotencyKey { document["idempotency_key"] = key }
        return document
    }

    static func parsed(_ bytes: [UInt8]) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? NSDictionary)
    }

    /// Every field, with an envelope from submit and one from the facade: the same document as
    /// the earlier renderer made, and the keys in order.
    @Test func itIsTheDocumentTheEarlierRendererMade() throws {
        let envelopes = [
            #"{"callback_url":"https://hooks.example/a","metadata":{"team":"x","n":[1,2.5,null,true]},"route":"smart"}"#,
            #"{"endpoint":"embeddings","format":"openai","route":"r"}"#, "",
        ]
        for envelope in envelopes {
            let job = Self.job(metadata: envelope)
            let encoded = JobResource(job).encoded
            #expect(try Self.parsed(encoded) == Self.earlierDocument(job) as NSDictionary, "\(envelope)")
            let keys = encoded.withUnsafeBufferPointer { bytes in
                var keys: [String] = []
                var scanner = JSONScanner(bytes)
                try? scanner.objectMembers { (key, _) throws(Never) in keys.append(JSONScanner.decodeString(bytes, key)) }
                return keys
            }
            #expect(!keys.isEmpty && keys == keys.sorted(), "members are written in key order")
        }
        var live = Self.job()
        live.state = .leased
        live.cancelRequested = true
        live.result = nil
        #expect(try Self.parsed(JobResource(live).encoded) == Self.earlierDocument(live) as NSDictionary)
    }

    /// The request and a JSON result are the queue's bytes, spliced (spacing and escapes as the
    /// client and provider wrote them); a result that is not JSON is text, a request that is not
    /// JSON is null.
    @Test func requestAndResultAreSplicedAsBytes() throws {
        let job = Self.job()
        let text = String(decoding: JobResource(job).encoded, as: UTF8.self)
        #expect(text.contains(#""request":{"model": "gpt-4o-mini",  "messages": [{"role": "user", "content": "hi \/ there"}]}"#))
        #expect(text.contains(#""result":{"id":"x","usage":{"prompt_tokens":3}}"#))
        let odd = Self.job(payload: "{broken", result: "plain \"text\"\n")
        let document = try Self.parsed(JobResource(odd).encoded)
        #expect(document["request"] is NSNull)
        #expect(document["result"] as? String == "plain \"text\"\n")
        #expect(try Self.parsed(JobResource(Self.job(result: "[1,2]")).encoded)["result"] as? [Int] == [1, 2])
    }
}

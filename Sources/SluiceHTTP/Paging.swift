import SluiceCore

/// The query parameters of every paged listing (`GET /v1/jobs`, `/v1/runs`, `/v1/pipelines`, the
/// batches), read one way: `limit` a whole number within its range (20 when absent), `cursor` as
/// an earlier page's `next_cursor` gave it. A bad one is a 400 naming the parameter.
enum Paging {
    /// `limit`, from 1 to `max`; 20 when absent.
    static func limit(_ text: Substring?, max: Int = 100) throws(APIError) -> Int {
        guard let text else { return 20 }
        guard let limit = Bounded.int(text, in: 1...max) else {
            throw APIError.invalid("'limit' must be a whole number from 1 to \(max)", param: "limit")
        }
        return limit
    }

    /// `cursor`, when `isCursor` accepts it (the listing's own form: a job id's time-ordered part,
    /// a run id); nil when absent.
    static func cursor(_ text: Substring?, isCursor: (String) -> Bool) throws(APIError) -> String? {
        guard let text else { return nil }
        let cursor = String(text)
        guard isCursor(cursor) else {
            throw APIError.invalid("'cursor' is not a cursor from an earlier page's next_cursor", param: "cursor")
        }
        return cursor
    }
}

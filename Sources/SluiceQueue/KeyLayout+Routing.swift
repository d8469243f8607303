extension KeyLayout {
    // What routing measures, per lane, in the lane's own slot (`sluice:{T}:lane:<lane>:…`).
    // Written by every worker's per-call recorder (`LaneCallRecorder`, lane-calls.lua, about once
    // a second per lane); read by the web process's route board (least_busy, latency, cost) and
    // by canary checks. Both keys expire a week after their lane's last recorded call.
    //
    // | key | type | holds |
    // |---|---|---|
    // | `sluice:{T}:lane:<lane>:calls` | hash | `p50` (ms, the decayed latency figure of successful calls), `at` (Unix ms of its last update, Redis TIME), `n` (successful calls measured), `ok` and `err` (calls counted in `outcomes`, all time) |
    // | `sluice:{T}:lane:<lane>:outcomes` | list | the outcomes of the lane's last 1,000 calls, newest first: '1' an error of the target (5xx, 408, 409, 425, connection error, timeout, an answer that is not readable HTTP), '0' not (any 2xx, or a 4xx other than 429); 429s and calls cut by a shutdown are not listed |

    /// The lane's latency figure and call counts (hash: p50, at, n, ok, err).
    public static func laneCalls(lane: String) -> String { laneKey(lane, "calls") }
    /// The outcomes of the lane's last calls, newest first ('1' error, '0' not), capped at `laneOutcomesCap`.
    public static func laneOutcomes(lane: String) -> String { laneKey(lane, "outcomes") }
    /// How many outcomes `laneOutcomes` keeps.
    public static let laneOutcomesCap = 1_000
}

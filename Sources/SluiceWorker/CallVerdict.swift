import SluiceCore
import SluiceProviders

/// What a lane worker does with the outcome of one provider call. Pure (no I/O, no clock), so
/// the policy is tested by itself; `LaneWorker.call` carries it out.
///
/// - success: complete (the attempt's usage recorded);
/// - a 429 that announces nothing: give the job back 100 ms later, attempt not counted, and
///   slow this worker down (AIMD) instead of pausing everyone;
/// - a 429 with a retry-after or limit headers: pause the provider for every worker (at most
///   `maxPause`; asking for longer opens the breaker too) and give the job back, attempt not
///   counted;
/// - retryable (5xx, timeouts, resets): a failed attempt, retried with backoff; counts toward
///   the breaker;
/// - context length or another 4xx: a final failure;
/// - the worker stopping past its grace period (`cancelled`): give the job back, attempt not
///   counted, whatever the call did.
struct CallVerdict: Sendable, Hashable {
    /// How the job is reported.
    enum Report: Sendable, Hashable {
        /// Record the answer.
        case complete
        /// Back to the lane after `delay`, the attempt not counted.
        case release(delay: Duration, why: String)
        /// A failed attempt: retried with backoff when `retryable`, else final.
        case fail(error: String, retryable: Bool)
    }

    /// What the call tells the lane's adaptive concurrency and circuit breaker.
    enum Control: Sendable, Hashable {
        case unchanged
        case succeeded
        /// A limit nobody announced: lower this worker's concurrency.
        case bareRateLimit
        /// One more retryable failure in a row.
        case failed
    }

    var report: Report
    var control: Control = .unchanged
    /// Pause the provider for every worker this long, resuming gently (probe, then slow start).
    var pause: Duration?
    /// Open the breaker this long, and why: the provider asked for a pause past `maxPause`.
    var openBreaker: Duration?
    var breakerReason = ""
    /// Whether the call counts as a success for the limiter's resume (probe and ramp).
    var succeeded: Bool { control == .succeeded }

    /// The verdict on `outcome`. `info` names the provider, status and latency (it begins every
    /// recorded reason); `maxPause` is the longest a provider's retry-after may pause the lane.
    static func decide(_ outcome: CallOutcome, cancelled: Bool, info: String, maxPause: Duration) -> CallVerdict {
        if cancelled {
            // Shutting down past the grace period: the job goes back, its attempt not counted.
            return CallVerdict(report: .release(delay: .zero, why: "worker stopped: \(info)"))
        }
        switch outcome {
        case .success:
            return CallVerdict(report: .complete, control: .succeeded)
        case .rateLimited(let limits, let message) where limits.pause == nil && limits.requests == nil && limits.tokens == nil:
            return CallVerdict(
                report: .release(delay: .milliseconds(100), why: "\(info): rate limited (no limit announced): \(message.prefix(200))"),
                control: .bareRateLimit)
        case .rateLimited(let limits, let message):
            let asked = limits.pause ?? .seconds(1)
            // A peer cannot stall the lane for ever: the pause is at most max_pause, and a
            // provider asking for longer opens the breaker (routed jobs move to their fallback;
            // then the breaker's probing, and the limiter's, take over).
            let pause = min(asked, maxPause)
            var verdict = CallVerdict(
                report: .release(delay: .zero, why: "\(info): rate limited, provider paused \(pause.milliseconds) ms: \(message.prefix(200))"),
                pause: pause)
            if asked > maxPause {
                verdict.openBreaker = pause
                verdict.breakerReason =
                    "\(info): retry-after of \(Bounded.milliseconds(asked)) ms is past max_pause (\(maxPause.milliseconds) ms)"
            }
            return verdict
        case .retryable(let why):
            return CallVerdict(report: .fail(error: "\(info): \(why)", retryable: true), control: .failed, breakerReason: "\(info): \(why.prefix(200))")
        case .contextLength(let why), .fatal(let why):
            return CallVerdict(report: .fail(error: "\(info): \(why)", retryable: false))
        }
    }
}

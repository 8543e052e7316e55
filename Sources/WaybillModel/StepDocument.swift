/// One step of an order's lifecycle in the trace document (`steps`): the move from one stage reached to
/// the next stage reached (`accepted` → `allocated`, `released` → `shipped`), with how long it took and
/// how long the same step usually takes (the 7 days before it, at the same warehouse). The last element
/// is the step in progress (`to` nil) while the order is not finished: how long it has been in its
/// current stage, compared with how long orders usually stay there.
///
/// Verdicts (`Verdict`): with at least `minimumSamples` steps to compare with,
/// - `typical`: the gap is at most p90 of the same step, or less than `tolerance` above it;
/// - `slow`: above p90 by `tolerance` or more;
/// - `very_slow`: above twice p90, and above p90 by `tolerance` or more (far outside);
/// - `no_history`: fewer than `minimumSamples` steps to compare with;
/// - `in_progress`: the step in progress; `slow_after` and `very_slow_after` say from when it counts as slow.
public struct StepDocument: Codable, Sendable, Equatable {
    public enum Verdict: String, Codable, Sendable {
        case typical, slow, veryslow = "very_slow", noHistory = "no_history", inProgress = "in_progress"
    }

    /// Fewer steps than this in the window give no verdict.
    public static let minimumSamples = 20
    /// A gap less than this above p90 is typical, however small p90 is (steps of a few seconds).
    public static let tolerance: Micros = 60_000_000

    /// Stage names (`Stage.name`).
    public var from: String
    /// Nil for the step in progress.
    public var to: String?
    public var startedAt: String
    public var endedAt: String?
    /// Seconds from `started_at` to `ended_at` (0 when a system's clock put the later stage earlier); nil in progress.
    public var gapSeconds: Double?
    /// The warehouse whose steps it is compared with; nil: every warehouse (the order has none yet).
    public var warehouse: String?
    /// The window the typical durations come from: whole hours, the 7 days before the step ended
    /// (the step in progress: before it started).
    public var windowFrom: String
    public var windowTo: String
    /// Steps in the window (the same `from` → `to`; in progress: every step leaving `from`).
    public var samples: Int
    /// Typical duration in seconds (kpis.md quantiles, within 0.5%); nil without samples.
    public var p50Seconds: Double?
    public var p90Seconds: Double?
    public var verdict: Verdict
    /// In progress only: when the step becomes `slow` and `very_slow` if it has not ended by then (nil without enough history).
    public var slowAfter: String?
    public var verySlowAfter: String?

    enum CodingKeys: String, CodingKey {
        case from, to, startedAt = "started_at", endedAt = "ended_at", gapSeconds = "gap_s", warehouse
        case windowFrom = "window_from", windowTo = "window_to", samples, p50Seconds = "p50_s", p90Seconds = "p90_s", verdict
        case slowAfter = "slow_after", verySlowAfter = "very_slow_after"
    }

    public init(from: String, to: String?, startedAt: String, endedAt: String?, gapSeconds: Double?, warehouse: String?,
                windowFrom: String, windowTo: String, samples: Int, p50Seconds: Double?, p90Seconds: Double?, verdict: Verdict,
                slowAfter: String? = nil, verySlowAfter: String? = nil)
    {
        self.from = from
        self.to = to
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.gapSeconds = gapSeconds
        self.warehouse = warehouse
        self.windowFrom = windowFrom
        self.windowTo = windowTo
        self.samples = samples
        self.p50Seconds = p50Seconds
        self.p90Seconds = p90Seconds
        self.verdict = verdict
        self.slowAfter = slowAfter
        self.verySlowAfter = verySlowAfter
    }

    /// The verdict of a finished step of `gap` against the same steps' p90 (microseconds) and their number.
    public static func verdict(gap: Micros, p90: Micros?, samples: Int) -> Verdict {
        guard samples >= minimumSamples, let p90 else { return .noHistory }
        guard gap - p90 >= tolerance else { return .typical }
        return gap > 2 * p90 ? .veryslow : .slow
    }

    /// For the step in progress: how long it may take before it is `slow` and `very_slow` (the first gap with that verdict).
    public static func thresholds(p90: Micros) -> (slow: Micros, verySlow: Micros) {
        (p90 + tolerance, Swift.max(2 * p90 + 1, p90 + tolerance))
    }

    /// The verdict of this step as of `now`: the step in progress is judged by its thresholds; the others keep theirs.
    public func verdict(now: Micros) -> Verdict {
        guard verdict == .inProgress else { return verdict }
        if let v = verySlowAfter.flatMap(RFC3339.parse), now >= v { return .veryslow }
        if let s = slowAfter.flatMap(RFC3339.parse), now >= s { return .slow }
        return .inProgress
    }

    /// `from → to` (`from → …` in progress).
    public var name: String { from + " → " + (to ?? "…") }
}

import WaybillModel

/// Exponential backoff with deterministic jitter: the delay depends only on the key and the attempt,
/// so a replayed workflow schedules the same retries.
public struct RetryPolicy: Codable, Hashable, Sendable {
    /// Attempts in all, the first included.
    public var maxAttempts: Int
    public var baseDelay: Micros
    public var multiplier: Double
    public var maxDelay: Micros
    /// Fraction of the delay that is randomised (0 = none, 0.5 = delay in [0.5d, d]).
    public var jitter: Double

    public init(maxAttempts: Int = 6, baseDelay: Micros = 1_000_000, multiplier: Double = 2, maxDelay: Micros = 60_000_000,
                jitter: Double = 0.2)
    {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.multiplier = multiplier
        self.maxDelay = maxDelay
        self.jitter = jitter
    }

    /// The wait after failed attempt `attempt` (1-based) before the next one.
    public func delay(afterAttempt attempt: Int, key: String) -> Micros {
        var d = Double(baseDelay)
        for _ in 1..<max(1, attempt) { d *= multiplier; if d >= Double(maxDelay) { break } }
        d = min(d, Double(maxDelay))
        if jitter > 0 {
            let h = SplitMix64.hash(StableHash.of(key), UInt64(attempt))
            let u = Double(h >> 11) * 0x1.0p-53
            d *= 1 - jitter * u
        }
        return Micros(d)
    }
}

/// FNV-1a over UTF-8: a string hash that is the same in every process (unlike `Hasher`).
public enum StableHash {
    public static func of(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }
}

import WaybillModel

/// xoshiro256**: the simulator's workhorse generator.
public struct Xoshiro256: RandomNumberGenerator, Codable, Hashable, Sendable {
    var s0, s1, s2, s3: UInt64

    public init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
    }

    @inline(__always) public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

extension RandomNumberGenerator {
    /// Uniform in [0, 1), 53 bits.
    @inline(__always) public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform integer in `0..<n` (n > 0), by multiply-shift (Lemire) without the rejection step: bias is < n/2^64.
    @inline(__always) public mutating func below(_ n: Int) -> Int {
        Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(n)).high)
    }

    @inline(__always) public mutating func uniform(_ lo: Int64, _ hi: Int64) -> Int64 {
        lo + Int64(below(Int(hi - lo + 1)))
    }

    @inline(__always) public mutating func chance(_ p: Double) -> Bool { p > 0 && unit() < p }

    /// Log-normal with the given median and shape; for service latencies.
    public mutating func logNormal(median: Double, sigma: Double) -> Double {
        // Box-Muller, one value per call: speed matters more than the discarded twin.
        let u1 = max(unit(), 1e-12), u2 = unit()
        let z = (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
        return median * _exp(sigma * z)
    }

    /// Exponential with the given mean.
    public mutating func exponential(mean: Double) -> Double { -mean * _log(max(unit(), 1e-12)) }

    /// Poisson by inversion for small means, normal approximation for large ones.
    public mutating func poisson(mean: Double) -> Int {
        if mean <= 0 { return 0 }
        if mean > 60 {
            let u1 = max(unit(), 1e-12), u2 = unit()
            let z = (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
            return max(0, Int((mean + z * mean.squareRoot()).rounded()))
        }
        let l = _exp(-mean)
        var k = 0
        var p = 1.0
        repeat { k += 1; p *= unit() } while p > l
        return k - 1
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

@inline(__always) func _log(_ x: Double) -> Double { log(x) }
@inline(__always) func _exp(_ x: Double) -> Double { exp(x) }
@inline(__always) func _cos(_ x: Double) -> Double { cos(x) }

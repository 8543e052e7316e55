import Foundation
import WaybillModel

/// Synthetic demand: which hour gets how many orders, and what each order contains.
/// Every draw comes from a generator seeded by (seed, hour) or (seed, order number), so the
/// demand is the same however the simulation is stepped and whatever faults are injected.
struct DemandModel {
    static let channels = ["web", "marketplace", "edi", "store"]
    static let channelShare = [0.5, 0.25, 0.15, 0.10]
    /// Relative demand by UTC hour (US customers: evenings UTC are US daytime).
    static let hourly: [[Double]] = [
        // web: US evening peak (00-03 UTC) and lunchtime (17-19 UTC)
        [1.6, 1.7, 1.5, 1.1, 0.7, 0.4, 0.25, 0.2, 0.2, 0.25, 0.35, 0.5, 0.7, 0.9, 1.0, 1.1, 1.2, 1.3, 1.3, 1.25, 1.2, 1.3, 1.4, 1.5],
        // marketplace: flatter
        [1.3, 1.3, 1.2, 1.0, 0.8, 0.6, 0.5, 0.45, 0.45, 0.5, 0.6, 0.7, 0.85, 1.0, 1.1, 1.15, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.25, 1.3],
        // edi: US business hours, batches
        [0.3, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.1, 0.2, 0.4, 0.8, 1.2, 1.8, 2.4, 2.6, 2.5, 2.4, 2.2, 2.0, 1.8, 1.5, 1.2, 0.9, 0.6],
        // store (ship-from-store replenishment / click & collect): store hours
        [0.6, 0.3, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.1, 0.2, 0.4, 0.8, 1.2, 1.6, 1.9, 2.0, 2.0, 2.0, 1.9, 1.8, 1.7, 1.5, 1.2, 0.9],
    ]
    /// Relative demand by weekday (0 = Monday).
    static let weekday: [[Double]] = [
        [1.0, 0.95, 0.95, 1.0, 1.05, 1.15, 1.2],
        [1.0, 1.0, 1.0, 1.0, 1.05, 1.1, 1.1],
        [1.2, 1.2, 1.2, 1.2, 1.1, 0.15, 0.1],
        [0.9, 0.9, 0.9, 1.0, 1.1, 1.3, 1.2],
    ]
    static let regionShare = [0.30, 0.24, 0.20, 0.10, 0.16]
    /// Hours from acceptance to the promised ship-by time, by channel.
    static let promiseHours: [Int64] = [24, 48, 72, 12]

    let seed: UInt64
    let start: Micros
    let promotions: [Promotion]
    let regions: [String]
    let skus: [String]
    let skuPrice: [Double]
    /// Cumulative popularity (Zipf-like) over `skus`.
    let skuCDF: [Double]
    let customers: [String]
    let ediCustomers: [String]
    let idTag: String
    /// Exact order counts per hour (batch mode), or nil (open-ended).
    let hourCounts: [Int]?
    let ordersPerDay: Double
    let meanHourWeight: Double
    let horizonHours: Int?
    /// End of the arrival period, when there is one.
    let horizonEnd: Micros?

    init(config: SimulatorConfig) {
        seed = config.seed
        start = config.start
        regions = config.network.regions.map(\.name)
        let tag = SplitMix64.mix(config.seed ^ 0x5EED)
        let hex = Array("0123456789ABCDEF".utf8)
        idTag = String(decoding: (0..<4).map { hex[Int((tag >> (UInt64($0) * 4)) & 0xF)] }, as: UTF8.self)
        var rng = Xoshiro256(seed: SplitMix64.hash(config.seed, 0xCA7A))
        var skus: [String] = [], prices: [Double] = [], weights: [Double] = []
        for i in 0..<max(1, config.skuCount) {
            skus.append("SKU-" + String(10000 + i))
            prices.append((Double(499 + rng.below(19_500))).rounded() / 100)
            weights.append(1 / pow(Double(i + 1), 0.9))
        }
        let total = weights.reduce(0, +)
        var acc = 0.0
        skuCDF = weights.map { acc += $0 / total; return acc }
        self.skus = skus
        skuPrice = prices
        customers = (0..<5000).map { "C" + String(100_000 + $0) }
        ediCustomers = (0..<40).map { "B2B-" + String(1000 + $0) }
        ordersPerDay = config.orders.map { Double($0) / max(config.days ?? 1, 1.0 / 24) } ?? config.ordersPerDay

        var promos = config.promotions ?? []
        if config.promotions == nil {
            // One 8-hour flash sale a week, starting at a seed-chosen day at 16:00 UTC.
            var r = Xoshiro256(seed: SplitMix64.hash(config.seed, 0x9B0))
            let firstDay = Micros(r.below(7))
            // Open-ended demand gets ten years of weekly sales.
            let span = Micros(((config.days ?? 3650) / 7).rounded(.up)) + 1
            let day0 = (config.start / 86_400_000_000) * 86_400_000_000
            for week in 0..<span {
                promos.append(Promotion(start: day0 + (firstDay + week * 7) * 86_400_000_000 + 16 * 3_600_000_000,
                                        duration: 8 * 3_600_000_000, multiplier: 2.5, channels: ["web", "marketplace"]))
            }
        }
        promotions = promos

        var sum = 0.0
        for h in 0..<(24 * 7) {
            for c in 0..<DemandModel.channels.count {
                sum += DemandModel.channelShare[c] * DemandModel.hourly[c][h % 24] * DemandModel.weekday[c][h / 24]
            }
        }
        meanHourWeight = sum / Double(24 * 7)

        if let n = config.orders, let d = config.days {
            let hours = max(1, Int((d * 24).rounded(.up)))
            horizonHours = hours
            var w: [Double] = []
            let horizonEnd = config.start + Micros(d * 86_400_000_000)
            for h in 0..<hours {
                let t = config.start + Micros(h) * 3_600_000_000
                // The last hour may be partial.
                let frac = min(1, Double(horizonEnd - t) / 3_600_000_000)
                w.append(DemandModel.weight(at: t, channel: nil, promotions: promos) * frac)
            }
            let total = w.reduce(0, +)
            var counts: [Int] = []
            var cum = 0.0, assigned = 0
            for x in w {
                cum += x
                let upTo = Int((Double(n) * cum / total).rounded(.down))
                counts.append(upTo - assigned)
                assigned = upTo
            }
            counts[counts.count - 1] += n - assigned
            hourCounts = counts
            self.horizonEnd = horizonEnd
        } else {
            hourCounts = nil
            horizonHours = config.days.map { max(1, Int(($0 * 24).rounded(.up))) }
            horizonEnd = config.days.map { config.start + Micros($0 * 86_400_000_000) }
        }
    }

    static func weight(at t: Micros, channel: Int?, promotions: [Promotion]) -> Double {
        let hour = Int((t / 3_600_000_000) % 24)
        // 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
        let dow = Int((t / 86_400_000_000 + 3) % 7)
        var total = 0.0
        for c in 0..<channels.count where channel == nil || channel == c {
            var w = channelShare[c] * hourly[c][hour] * weekday[c][dow]
            for p in promotions where t >= p.start && t < p.start + p.duration && p.channels.contains(channels[c]) {
                w *= p.multiplier
            }
            total += w
        }
        return total
    }

    /// Arrival times of the orders of hour `h` (from `start`), sorted, with their channel.
    func arrivals(hour h: Int) -> [(time: Micros, channel: Int)] {
        let t0 = start + Micros(h) * 3_600_000_000
        var rng = Xoshiro256(seed: SplitMix64.hash(seed, 0xA441, UInt64(h)))
        let count: Int
        if let counts = hourCounts {
            guard h < counts.count else { return [] }
            count = counts[h]
        } else {
            if let hz = horizonHours, h >= hz { return [] }
            let mean = ordersPerDay / 24 * DemandModel.weight(at: t0, channel: nil, promotions: promotions) / meanHourWeight
            count = rng.poisson(mean: mean)
        }
        guard count > 0 else { return [] }
        var cw: [Double] = []
        var acc = 0.0
        for c in 0..<DemandModel.channels.count {
            acc += DemandModel.weight(at: t0, channel: c, promotions: promotions)
            cw.append(acc)
        }
        var out: [(Micros, Int)] = []
        out.reserveCapacity(count)
        var span: Micros = 3_600_000_000
        if let end = horizonEnd { span = max(1000, min(span, end - t0)) }
        for _ in 0..<count {
            // Millisecond precision, as most producers send.
            let offset = Micros(rng.below(Int(span / 1000))) * 1000
            let u = rng.unit() * acc
            var c = 0
            while c < cw.count - 1 && u >= cw[c] { c += 1 }
            out.append((t0 + offset, c))
        }
        out.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        return out
    }

    func orderID(_ n: Int) -> String {
        let digits = String(n)
        return "SO-" + idTag + "-" + String(repeating: "0", count: max(0, 7 - digits.count)) + digits
    }

    /// The content of order number `n` (the same for a resubmission).
    func order(_ n: Int, channel: Int, at t: Micros) -> OrderRequest {
        var rng = Xoshiro256(seed: SplitMix64.hash(seed, 0x0DE5, UInt64(truncatingIfNeeded: n)))
        let u = rng.unit()
        var region = 0, acc = DemandModel.regionShare[0]
        while region < regions.count - 1 && u >= acc { region += 1; acc += DemandModel.regionShare[min(region, DemandModel.regionShare.count - 1)] }
        let isEDI = channel == 2
        let lineCount = isEDI ? 2 + rng.below(8) : 1 + min(rng.poisson(mean: 0.9), 6)
        var lines: [OrderLineRequest] = []
        lines.reserveCapacity(lineCount)
        var used: [Int] = []
        // B2B (EDI) customers buy from the core range: the top fifth of SKUs.
        let range = isEDI ? skuCDF[max(0, skuCDF.count / 5 - 1)] : 1.0
        for i in 0..<lineCount {
            var s = sku(rng.unit() * range)
            var tries = 0
            while used.contains(s) && tries < 4 { s = sku(rng.unit() * range); tries += 1 }
            if used.contains(s) { continue }
            used.append(s)
            let qty = isEDI ? 4 + rng.below(21) : (rng.chance(0.8) ? 1 : 2 + rng.below(3))
            lines.append(OrderLineRequest(line: i + 1, sku: skus[s], qty: qty, unitPrice: skuPrice[s]))
        }
        let customer = isEDI ? ediCustomers[rng.below(ediCustomers.count)] : customers[rng.below(customers.count)]
        return OrderRequest(orderID: orderID(n), idempotencyKey: DemandModel.channels[channel] + ":" + String(n),
                            channel: DemandModel.channels[channel], customer: customer, region: regions[region],
                            promisedShipBy: t + DemandModel.promiseHours[channel] * 3_600_000_000, lines: lines)
    }

    private func sku(_ u: Double) -> Int {
        var lo = 0, hi = skuCDF.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if skuCDF[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Expected units per order and per SKU per order, estimated from a sample of orders.
    func expectedUnits() -> (perOrder: Double, perSKU: [Double]) {
        var perSKU = [Double](repeating: 0, count: skus.count)
        let sample = 4000
        var total = 0.0
        var index: [String: Int] = [:]
        for (i, s) in skus.enumerated() { index[s] = i }
        for n in 0..<sample {
            let c = n % 20 < 10 ? 0 : n % 20 < 15 ? 1 : n % 20 < 18 ? 2 : 3
            let o = order(-1 - n, channel: c, at: start)
            for l in o.lines {
                perSKU[index[l.sku]!] += Double(l.qty)
                total += Double(l.qty)
            }
        }
        return (total / Double(sample), perSKU.map { $0 / Double(sample) })
    }
}

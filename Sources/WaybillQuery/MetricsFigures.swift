import WaybillKPI
import WaybillModel
import WaybillStore

/// The figures `/metrics` reads from the store: its size, orders by state, and per warehouse and per
/// channel the KPI accumulators of the last hour and the last day (from the KPI rollups). Label values
/// are bounded here: at most `cap` groups per dimension, the busiest kept and the rest merged into
/// one group named `other`.
public struct MetricsFigures: Sendable {
    public struct Window: Sendable {
        /// `1h` or `1d`.
        public var name: String
        public var from: Micros
        public var to: Micros
        /// By label value (`unknown` for orders without one, `other` for groups beyond the bound).
        public var warehouses: [(label: String, accumulator: KPIAccumulator)]
        public var channels: [(label: String, accumulator: KPIAccumulator)]
    }

    public var stats: StoreStats
    /// nil when the store cannot count by state.
    public var ordersByState: [Stage?: Int]?
    public var windows: [Window]
    /// The clock when the figures were read, and how long reading took.
    public var computedAt: Micros
    public var durationSeconds: Double

    /// The windows: the last hour and the last day, ending now.
    public static let windowLengths: [(name: String, length: Micros)] = [("1h", 3_600_000_000), ("1d", 86_400_000_000)]
    /// Label for orders without a warehouse or channel.
    public static let unknownLabel = "unknown"
    public static let otherLabel = "other"

    /// Keeps the `cap - 1` groups with the most orders (allocated plus shipped), merges the rest into
    /// `other`; label values are the group values, `unknown` for nil.
    public static func bounded(_ groups: [String?: KPIAccumulator], cap: Int) -> [(label: String, accumulator: KPIAccumulator)] {
        func weight(_ a: KPIAccumulator) -> Int64 { a.ordersAllocated + a.shipments }
        var named: [String: KPIAccumulator] = [:]
        for (g, a) in groups {
            let label = g.map { $0.isEmpty ? unknownLabel : $0 } ?? unknownLabel
            named[label, default: KPIAccumulator()].merge(a)
        }
        guard named.count > cap else { return named.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
        let ranked = named.sorted { weight($0.value) != weight($1.value) ? weight($0.value) > weight($1.value) : $0.key < $1.key }
        let kept = ranked.filter { $0.key != otherLabel }.prefix(max(cap - 1, 0))
        let keptLabels = Set(kept.map(\.key))
        var other = KPIAccumulator()
        for (label, a) in ranked where !keptLabels.contains(label) { other.merge(a) }
        return (kept.map { ($0.key, $0.value) } + [(otherLabel, other)]).sorted { $0.0 < $1.0 }.map { (label: $0.0, accumulator: $0.1) }
    }
}

extension LocalQueries {
    /// Reads the figures of `/metrics` on a scan lane (a few queries over indexes and rollups; the
    /// server caches them for a few seconds so that a scrape does not wait on them).
    public func metricsFigures(cap: Int) async throws -> MetricsFigures {
        let now = clock()
        return try await lanes.scan.run { [store] in
            let started = currentMicros()
            let stats = try store.stats()
            let states = try (store as? any OrderStateCounter)?.orderCountsByState()
            let service = KPIService(reader: store)
            var windows: [MetricsFigures.Window] = []
            for (name, length) in MetricsFigures.windowLengths {
                let from = now - length
                let w = try service.accumulators(KPIQuery(from: from, to: now, by: .warehouse))
                let c = try service.accumulators(KPIQuery(from: from, to: now, by: .channel))
                windows.append(MetricsFigures.Window(name: name, from: from, to: now, warehouses: MetricsFigures.bounded(w, cap: cap),
                                                     channels: MetricsFigures.bounded(c, cap: cap)))
            }
            return MetricsFigures(stats: stats, ordersByState: states, windows: windows, computedAt: now,
                                  durationSeconds: Double(currentMicros() - started) / 1e6)
        }
    }
}

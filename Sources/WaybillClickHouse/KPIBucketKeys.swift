import WaybillKPI
import WaybillModel
import WaybillStore

/// The rollup buckets an order's facts fall in under the KPI engine's rollup (`KPIFactsRollup`), computed
/// from the facts alone: per tier, the bucket of the allocation part and of the shipment part, under the
/// total and each dimension; and the hour of each finished lifecycle step (`StepRollup`). These are the
/// keys `KPIFactsRollup.update` writes for the order as a new one, without building and encoding the rows
/// (`ClickHouseStore.rollupKeyRows` needs only the keys). Used only for the layout it was written for
/// (`make`); `KPIBucketKeysTests` compares it with `update` over many facts.
struct KPIBucketKeys: Sendable {
    let widths: [Micros]
    /// Per tier, the stored dimension names (total first).
    let names: [[String]]

    /// The keys for `rollup`, when it is the KPI engine's rollup of the layout this computes.
    static func make(_ rollup: (any FactsRollup)?) -> KPIBucketKeys? {
        guard let kpi = rollup as? KPIFactsRollup else { return nil }
        let expected = "blocks2:" + kpi.bucketWidths.map(String.init).joined(separator: ",") + "+steps1"
        guard kpi.layout == expected, StepRollup.layout == "steps1" else { return nil }
        return KPIBucketKeys(widths: kpi.bucketWidths)
    }

    init(widths: [Micros]) {
        self.widths = widths
        names = widths.map { w in (["total"] + KPIDimension.allCases.map(\.rawValue)).map { KPIRollupKey.storedDimension($0, width: w) } }
    }

    /// Whether `a` and `b` fall in the same buckets: the inputs of `buckets` are equal (cheaper than
    /// computing both sets when an event changed nothing they depend on).
    func sameBuckets(_ a: OrderFacts, _ b: OrderFacts) -> Bool {
        Self.partTimes(a) == Self.partTimes(b) && a.stageTimes == b.stageTimes
    }

    /// The times `OrderContribution(f)` gives its allocation and shipment parts (without building them).
    static func partTimes(_ f: OrderFacts) -> (allocation: Micros?, shipment: Micros?) {
        (f.acceptedAt == nil ? nil : f.allocatedAt, f.releasedAt == nil ? nil : f.shippedAt)
    }

    func buckets(_ f: OrderFacts) -> Set<RollupKey> {
        var out = Set<RollupKey>(minimumCapacity: 2 * names.reduce(0) { $0 + $1.count } + 12)
        let parts = Self.partTimes(f)
        for at in [parts.allocation, parts.shipment] {
            guard let at else { continue }
            for (tier, w) in widths.enumerated() {
                let start = KPIRollup.bucketStart(at, width: w)
                for name in names[tier] { out.insert(RollupKey(dimension: name, group: nil, bucketStart: start)) }
            }
        }
        for s in f.lifecycleSteps {
            out.insert(RollupKey(dimension: StepRollup.dimension, group: nil, bucketStart: KPIRollup.bucketStart(s.end, width: StepRollup.bucketWidth)))
        }
        return out
    }
}

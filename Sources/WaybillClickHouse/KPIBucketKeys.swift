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

    /// A group of an order's buckets: the buckets of one tier that start at `start` (one per stored
    /// dimension name of the tier, `names[tier]`), or, with `tier` -1, the step hour at `start`. Two
    /// different slots hold no bucket in common (each tier's names carry its width), so sets of slots
    /// compare, merge and subtract as the sets of buckets they expand to, at a few integers per order
    /// instead of a hashed name per bucket (hashing the buckets was a tenth of a bulk load's client CPU).
    struct Slot: Hashable {
        var tier: Int
        var start: Micros
    }

    /// The distinct slots of these facts' buckets (`buckets(f)` is their expansion).
    func slots(_ f: OrderFacts) -> [Slot] {
        var out: [Slot] = []
        out.reserveCapacity(2 * widths.count + f.lifecycleSteps.count)
        func add(_ s: Slot) { if !out.contains(s) { out.append(s) } }
        let parts = Self.partTimes(f)
        for at in [parts.allocation, parts.shipment] {
            guard let at else { continue }
            for (tier, w) in widths.enumerated() { add(Slot(tier: tier, start: KPIRollup.bucketStart(at, width: w))) }
        }
        for s in f.lifecycleSteps { add(Slot(tier: -1, start: KPIRollup.bucketStart(s.end, width: StepRollup.bucketWidth))) }
        return out
    }

    /// Appends the buckets of `slot` to `out`.
    func expand(_ slot: Slot, into out: inout [RollupKey]) {
        guard slot.tier >= 0 else {
            out.append(RollupKey(dimension: StepRollup.dimension, group: nil, bucketStart: slot.start))
            return
        }
        for name in names[slot.tier] { out.append(RollupKey(dimension: name, group: nil, bucketStart: slot.start)) }
    }

    /// The buckets of `slots` (distinct slots give distinct buckets).
    func expand(_ slots: some Sequence<Slot>) -> [RollupKey] {
        var out: [RollupKey] = []
        for s in slots { expand(s, into: &out) }
        return out
    }

    func buckets(_ f: OrderFacts) -> Set<RollupKey> {
        Set(expand(slots(f)))
    }

    /// The key a slot is indexed and marked under (`rollup_keys`, `rollup_dirty`): its first bucket (the
    /// tier's total; the step hour itself). Every bucket of a slot holds the same orders (`update` writes
    /// all of them for an order in the slot), so one index row and one mark per slot stand for the slot's
    /// buckets: a quarter of the rows one per bucket took (the total and three dimensions per tier).
    func indexKey(_ slot: Slot) -> RollupKey {
        RollupKey(dimension: slot.tier >= 0 ? names[slot.tier][0] : StepRollup.dimension, group: nil, bucketStart: slot.start)
    }

    func indexKeys(_ slots: some Sequence<Slot>) -> [RollupKey] {
        slots.map(indexKey)
    }

    /// The name the buckets of stored dimension `dimension` are indexed and marked under: the total of its
    /// tier (`indexKey`); a name of no tier (the step dimension) is its own.
    func indexName(_ dimension: String) -> String {
        guard let (_, width) = KPIRollupKey.parse(storedDimension: dimension), let tier = widths.firstIndex(of: width) else { return dimension }
        return names[tier][0]
    }
}

import WaybillModel
import WaybillStore

extension KPIService {
    /// Per group of `q.by` (nil: orders without a value), the KPI accumulator of the window: whole buckets
    /// from rollup rows and the edges from facts, read exactly as `document(_:)` reads them, so that
    /// `accumulators(q)[g].kpis` equals that document's group `g`. `/metrics` turns the sketches into
    /// histogram buckets and merges groups beyond its label bound into one.
    public func accumulators(_ q: KPIQuery) throws -> [String?: KPIAccumulator] {
        var plan = q.rollupPlan(bucketWidths: bucketWidths)
        let dimension = q.by?.rawValue ?? "total"
        var groups: [String?: KPIAccumulator] = [:]
        var rows: [(group: String?, bucket: Micros, acc: KPIAccumulator, width: Micros)] = []
        for (tier, width) in bucketWidths.enumerated() {
            guard !plan.rollupRanges[tier].isEmpty else { continue }
            let stored = KPIRollupKey.storedDimension(dimension, width: width)
            var deferred: [Micros] = []
            for (key, bytes) in try reader.rollupRows(dimension: stored, in: plan.rollupRanges[tier]) {
                let block = try KPIRollupBlock.decode(bytes)
                if block.contains(where: { !$0.accumulator.maxIsExact }) {
                    deferred.append(key.bucketStart)
                    continue
                }
                for (group, acc) in block { rows.append((group, key.bucketStart, acc, width)) }
            }
            if !deferred.isEmpty { plan = plan.deferring(deferred, tier: tier) }
        }
        for r in rows where !r.acc.isEmpty {
            let key = KPIRollupKey(dimension: q.by, group: r.group, bucketStart: r.bucket, bucketWidth: r.width)
            guard plan.inRollups(key), q.window.contains(r.bucket) else { continue }
            groups[r.group, default: KPIAccumulator()].merge(r.acc)
        }
        let facts = plan.factRanges.isEmpty ? [] : try reader.kpiFacts(in: plan.factRanges)
        for f in facts {
            let c = OrderContribution(f)
            if let a = c.allocation, plan.inFacts(a.at), q.window.contains(a.at) { groups[q.by.flatMap(a.group), default: KPIAccumulator()].add(a) }
            if let s = c.shipment, plan.inFacts(s.at), q.window.contains(s.at) { groups[q.by.flatMap(s.group), default: KPIAccumulator()].add(s) }
        }
        return groups
    }
}

import WaybillModel
import WaybillStore

extension KPIService {
    /// Per group of `q.by` (nil: orders without a value), the KPI accumulator of the window: whole buckets
    /// from rollup rows and the edges from facts, read by the same `windowInputs(_:)` as `document(_:)`, so that
    /// `accumulators(q)[g].kpis` equals that document's group `g`. `/metrics` turns the sketches into
    /// histogram buckets and merges groups beyond its label bound into one.
    public func accumulators(_ q: KPIQuery) throws -> [String?: KPIAccumulator] {
        let (plan, rows, facts) = try windowInputs(q)
        var groups: [String?: KPIAccumulator] = [:]
        for r in rows where !r.accumulator.isEmpty {
            guard plan.inRollups(r.key), q.window.contains(r.key.bucketStart) else { continue }
            groups[r.key.group, default: KPIAccumulator()].merge(r.accumulator)
        }
        for f in facts {
            let c = OrderContribution(f)
            if let a = c.allocation, plan.inFacts(a.at), q.window.contains(a.at) { groups[q.by.flatMap(a.group), default: KPIAccumulator()].add(a) }
            if let s = c.shipment, plan.inFacts(s.at), q.window.contains(s.at) { groups[q.by.flatMap(s.group), default: KPIAccumulator()].add(s) }
        }
        return groups
    }
}

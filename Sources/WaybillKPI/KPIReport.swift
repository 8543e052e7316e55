import WaybillModel

/// Builds KPI documents. Both paths share one builder, so the rollup path can be tested against
/// the reference path: they agree exactly on everything but quantiles (sketched there).
public enum KPIReport {
    public enum Quantiles: Sendable {
        /// Every value kept and sorted: the reference.
        case exact
        /// Through `QuantileSketch`: bounded memory, quantiles within 0.5%.
        case sketched
    }

    /// The KPI document over orders' facts. Orders may come in any order (the result is the same).
    public static func compute<S: Sequence>(facts: S, query: KPIQuery, quantiles: Quantiles = .exact) -> KPIDocument
    where S.Element == OrderFacts {
        switch quantiles {
        case .exact:
            var b = DocumentBuilder<ExactKPICollector>(query: query)
            for f in facts { b.add(OrderContribution(f)) }
            return b.document
        case .sketched:
            var b = DocumentBuilder<KPIAccumulator>(query: query)
            for f in facts { b.add(OrderContribution(f)) }
            return b.document
        }
    }

    /// The KPI document from rollup rows plus, for what rows cannot answer, orders' facts.
    ///
    /// Callers read, per tier of `query.rollupPlan(bucketWidths:)`, the rows with `bucketStart` inside
    /// `plan.rollupRanges[tier]` for the dimension `query.by` (the total rows when nil), and the facts
    /// of orders whose `allocated_at` or `shipped_at` lies inside the factRanges of that plan
    /// `settled(by:)` those rows: a bucket whose rows do not all know their maximum is answered by the
    /// finer tiers and facts instead (`KPIService.document` reads it that way). Extra rows and facts
    /// are ignored, so over-reading is safe; an order part is counted from exactly one source.
    public static func compute<R: Collection, F: Sequence>(query: KPIQuery, bucketWidths: [Micros], rows: R, edgeFacts: F) -> KPIDocument
    where R.Element == KPIRollupRow, F.Element == OrderFacts {
        compute(query: query, plan: query.rollupPlan(bucketWidths: bucketWidths).settled(by: rows, dimension: query.by), rows: rows,
                edgeFacts: edgeFacts)
    }

    /// The KPI document from the rows and facts `plan` assigns (a plan of `query`, settled by the rows):
    /// rows inside its rollup ranges, facts inside its fact ranges; the rest is ignored.
    public static func compute<R: Sequence, F: Sequence>(query: KPIQuery, plan: KPIRollupPlan, rows: R, edgeFacts: F) -> KPIDocument
    where R.Element == KPIRollupRow, F.Element == OrderFacts {
        var b = DocumentBuilder<KPIAccumulator>(query: query)
        for row in rows where row.key.dimension == query.by && (query.by != nil || row.key.group == nil) {
            guard plan.inRollups(row.key), !row.accumulator.isEmpty else { continue }
            b.merge(row.accumulator, group: row.key.group, at: row.key.bucketStart)
        }
        for f in edgeFacts {
            let c = OrderContribution(f)
            if let a = c.allocation, plan.inFacts(a.at) { b.add(a) }
            if let s = c.shipment, plan.inFacts(s.at) { b.add(s) }
        }
        return b.document
    }
}

struct DocumentBuilder<C: KPICollector> {
    let query: KPIQuery
    /// Set when groups come from a label given per order instead of `query.by`.
    let splitName: String?
    let stepCount: Int
    var total = C()
    var groups: [String?: C] = [:]
    /// Per group (the single key nil without `by`), one collector per step.
    var series: [String?: [C]] = [:]

    init(query: KPIQuery, splitName: String? = nil) {
        self.query = query
        self.splitName = splitName
        stepCount = query.steps.count
    }

    var grouped: Bool { query.by != nil || splitName != nil }

    private mutating func route(at t: Micros, group: String?, _ body: (inout C) -> Void) {
        body(&total)
        if grouped { body(&groups[group, default: C()]) }
        if let i = query.stepIndex(t) {
            if series[group] == nil { series[group] = Array(repeating: C(), count: stepCount) }
            body(&series[group]![i])
        }
    }

    mutating func add(_ c: OrderContribution) {
        if let a = c.allocation { add(a) }
        if let s = c.shipment { add(s) }
    }

    mutating func add(_ a: AllocationPart) { add(a, group: query.by.flatMap(a.group)) }

    mutating func add(_ s: ShipmentPart) { add(s, group: query.by.flatMap(s.group)) }

    mutating func add(_ a: AllocationPart, group: String?) {
        guard query.window.contains(a.at) else { return }
        route(at: a.at, group: group) { $0.add(a) }
    }

    mutating func add(_ s: ShipmentPart, group: String?) {
        guard query.window.contains(s.at) else { return }
        route(at: s.at, group: group) { $0.add(s) }
    }

    var document: KPIDocument {
        let steps = query.steps
        var series = series
        if !grouped, !steps.isEmpty, series[nil] == nil { series[nil] = Array(repeating: C(), count: stepCount) }
        let groupList = groups.keys.sorted(by: groupOrder).map { KPIDocument.Group(value: $0, kpis: groups[$0]!.kpis) }
        let seriesList = series.keys.sorted(by: groupOrder).map { g in
            KPIDocument.Series(value: g, points: zip(steps, series[g]!).map {
                let start = floorDiv($0.0.lowerBound, query.step!) * query.step!
                return KPIDocument.Point(start: start, end: start + query.step!, kpis: $0.1.kpis)
            })
        }
        return KPIDocument(query: query, total: total.kpis, groups: groupList, series: seriesList, splitName: splitName)
    }
}

extension DocumentBuilder where C == KPIAccumulator {
    /// Merges a rollup row that lies wholly inside the window and inside one step.
    mutating func merge(_ acc: KPIAccumulator, group: String?, at bucketStart: Micros) {
        route(at: bucketStart, group: group) { $0.merge(acc) }
    }
}

import WaybillModel
import WaybillStore

/// The KPI engine's side of the store seam: it keeps the rollup rows current at ingest
/// (`FactsRollup`) and answers KPI queries from rows plus edge facts (`KPIService`).
public struct KPIFactsRollup: FactsRollup {
    /// Hours and minutes. A 30-day report reads 720 hour rows per group; a window's unaligned edges
    /// are read from minute rows, and only what lies between a minute boundary and the window's edge
    /// (under a minute at each end) from the orders' facts. An alert rule evaluated every minute on
    /// minute boundaries reads no facts at all.
    public static let storeBucketWidths: [Micros] = [3_600_000_000, 60_000_000]
    /// The tiers' widths, coarsest first.
    public let bucketWidths: [Micros]

    public init(bucketWidths: [Micros] = KPIFactsRollup.storeBucketWidths) {
        precondition(!bucketWidths.isEmpty && bucketWidths.allSatisfy { $0 > 0 && $0 % 1_000_000 == 0 },
                     "rollup bucket widths must be whole seconds")
        self.bucketWidths = bucketWidths
    }

    /// One row per dimension and bucket (`KPIRollupBlock`), per tier.
    public var layout: String { "blocks:" + bucketWidths.map(String.init).joined(separator: ",") }

    /// Applies each transition's retractions and additions straight to the touched rows (the same
    /// updates as `KPIRollup.changes`, without building and sorting a change list per order: this runs
    /// on the store's single writer thread for every order a write touches). Each stored row is read
    /// and written once per call.
    public func update(_ transitions: [FactsTransition], read: (RollupKey) throws -> [UInt8]?) throws -> [(RollupKey, [UInt8]?)] {
        /// Dimension 0 is the total, 1... follow `KPIDimension.allCases`.
        struct Slot: Hashable {
            var tier: Int
            var dimension: Int
            var bucketStart: Micros
        }
        let names = bucketWidths.map { w in (["total"] + KPIDimension.allCases.map(\.rawValue)).map { KPIRollupKey.storedDimension($0, width: w) } }
        func storeKey(_ s: Slot) -> RollupKey { RollupKey(dimension: names[s.tier][s.dimension], group: nil, bucketStart: s.bucketStart) }
        var index: [Slot: Int] = [:]
        var slots: [Slot] = []
        var blocks: [[String?: KPIAccumulator]] = []
        func touch(_ part: KPIPart, removing: Bool) throws {
            var groups: [String?] = [nil]
            for d in KPIDimension.allCases { groups.append(part.group(d)) }
            for (tier, width) in bucketWidths.enumerated() {
                let bucket = KPIRollup.bucketStart(part.at, width: width)
                for (dimension, group) in groups.enumerated() {
                    let slot = Slot(tier: tier, dimension: dimension, bucketStart: bucket)
                    let i: Int
                    if let known = index[slot] {
                        i = known
                    } else {
                        i = slots.count
                        index[slot] = i
                        slots.append(slot)
                        var block: [String?: KPIAccumulator] = [:]
                        if let bytes = try read(storeKey(slot)) {
                            for (g, acc) in try KPIRollupBlock.decode(bytes) { block[g] = acc }
                        }
                        blocks.append(block)
                    }
                    if removing { blocks[i][group, default: KPIAccumulator()].remove(part) } else { blocks[i][group, default: KPIAccumulator()].add(part) }
                }
            }
        }
        for t in transitions {
            let old = t.old.map(OrderContribution.init), new = OrderContribution(t.new)
            if old?.allocation != new.allocation {
                if let a = old?.allocation { try touch(.allocation(a), removing: true) }
                if let a = new.allocation { try touch(.allocation(a), removing: false) }
            }
            if old?.shipment != new.shipment {
                if let s = old?.shipment { try touch(.shipment(s), removing: true) }
                if let s = new.shipment { try touch(.shipment(s), removing: false) }
            }
        }
        // In the table's key order (dimension name, then bucket).
        let order = slots.indices.sorted { a, b in
            let x = slots[a], y = slots[b]
            if x.tier != y.tier || x.dimension != y.dimension { return names[x.tier][x.dimension] < names[y.tier][y.dimension] }
            return x.bucketStart < y.bucketStart
        }
        return order.map { (storeKey(slots[$0]), KPIRollupBlock.encode(blocks[$0])) }
    }
}

/// Answers KPI documents and drill-downs from a store.
public struct KPIService: Sendable {
    let reader: any RollupReader
    let bucketWidths: [Micros]

    public init(reader: any RollupReader, bucketWidths: [Micros] = KPIFactsRollup.storeBucketWidths) {
        self.reader = reader
        self.bucketWidths = bucketWidths
    }

    /// The KPI document of interfaces.md: whole buckets from rollup rows, the rest from facts.
    public func document(_ q: KPIQuery) throws -> KPIDocument {
        let plan = q.rollupPlan(bucketWidths: bucketWidths)
        let dimension = q.by?.rawValue ?? "total"
        var rows: [KPIRollupRow] = []
        for (tier, width) in bucketWidths.enumerated() where !plan.rollupRanges[tier].isEmpty {
            let stored = KPIRollupKey.storedDimension(dimension, width: width)
            for (key, bytes) in try reader.rollupRows(dimension: stored, in: plan.rollupRanges[tier]) {
                for (group, acc) in try KPIRollupBlock.decode(bytes) {
                    rows.append(KPIRollupRow(key: KPIRollupKey(dimension: q.by, group: group, bucketStart: key.bucketStart, bucketWidth: width),
                                             accumulator: acc))
                }
            }
        }
        let facts = plan.factRanges.isEmpty ? [] : try reader.kpiFacts(in: plan.factRanges)
        return KPIReport.compute(query: q, bucketWidths: bucketWidths, rows: rows, edgeFacts: facts)
    }

    /// The orders behind a figure (`allocation_delay.p95_s`, `fill_rate`, ...) in the query's window,
    /// optionally within one group of `q.by` (`.some(nil)` is the null group).
    public func explain(_ metric: KPIMetric, _ q: KPIQuery, group: String?? = .none, limit: Int = 20) throws -> [KPIContributor] {
        let facts = try reader.kpiFacts(in: [q.from..<q.to])
        return try KPIExplain.contributors(facts: facts, metric: metric, query: q, group: group, limit: limit)
    }
}

extension KPIService {
    /// A report in one format: JSON and CSV carry the document; table and HTML also compare with the
    /// previous window of the same length, and HTML lists the slowest allocations behind the p95.
    public func report(_ q: KPIQuery, format: KPIFormat) throws -> String {
        let doc = try document(q)
        switch format {
        case .json, .csv:
            return KPIRender.render(format, current: doc, previous: nil)
        case .table, .html:
            let previous = try document(q.previous)
            var contributors: [KPIContributor] = []
            if format == .html {
                contributors = try explain(try KPIMetric.parse("allocation_delay.p95_s"), q, limit: 20)
            }
            return KPIRender.render(format, current: doc, previous: previous, contributors: contributors)
        }
    }
}

extension TelemetrySplit {
    /// `errors`, `error-in:SERVICE`, `span-time:SERVICE>DURATION` (as `waybill kpi --split` takes them).
    public static func parse(_ s: String) throws(KPIQueryError) -> TelemetrySplit {
        if s == "errors" { return .errorSpans }
        if s.hasPrefix("error-in:"), s.count > 9 { return .errorSpansIn(service: String(s.dropFirst(9))) }
        if s.hasPrefix("span-time:"), let gt = s.firstIndex(of: ">") {
            let service = String(s[s.index(s.startIndex, offsetBy: 10)..<gt])
            if !service.isEmpty, let d = DurationText.parse(String(s[s.index(after: gt)...])) { return .spanTime(service: service, above: d) }
        }
        throw KPIQueryError(field: "split", rule: "must be errors, error-in:SERVICE or span-time:SERVICE>DURATION (e.g. error-in:erp)")
    }
}

extension KPIService {
    /// The KPI document split by the telemetry of each order's trace (kpis.md, last section), for
    /// example allocation delay of orders whose trace holds an error span in `erp` against those
    /// without. With `q.by`, groups combine both: `DC-EAST · with_error`. Computed from the facts of
    /// the window's orders and their traces (exact quantiles); orders without spans fall in the
    /// null telemetry group.
    public func splitDocument(_ q: KPIQuery, split: TelemetrySplit, traces: any TraceReader) throws -> KPIDocument {
        let facts = try reader.kpiFacts(in: [q.from..<q.to])
        var telemetry: [String: OrderTelemetry] = [:]
        for f in facts {
            if let t = try traces.trace(key: f.orderID), !t.spans.isEmpty { telemetry[f.orderID] = OrderTelemetry(spans: t.spans) }
        }
        guard let by = q.by else {
            return KPIReport.compute(facts: facts, query: q, split: split) { telemetry[$0.orderID] }
        }
        return KPIReport.compute(facts: facts, query: q, splitName: by.rawValue + "+" + split.name) { f in
            let g: String?
            switch by {
            case .warehouse: g = f.allocationWarehouse ?? f.shipmentWarehouse
            case .channel: g = f.channel
            case .region: g = f.region
            }
            return (g ?? "null") + " · " + (split.label(telemetry[f.orderID]) ?? "no_spans")
        }
    }
}

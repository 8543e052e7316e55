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
        // A change collected for a finest bucket is applied to the coarser buckets holding its start.
        precondition(zip(bucketWidths, bucketWidths.dropFirst()).allSatisfy { $0 > $1 && $0 % $1 == 0 },
                     "each rollup bucket width must be a multiple of the next, finer one")
        self.bucketWidths = bucketWidths
    }

    /// One row per dimension and bucket (`KPIRollupBlock`), per tier. `blocks2`: sketches that mark a
    /// maximum they cannot know (`QuantileSketch.maxIsExact`); rows of `blocks` are rebuilt on open.
    /// `+steps1`: the lifecycle step durations beside them (`StepRollup`).
    public var layout: String { "blocks2:" + bucketWidths.map(String.init).joined(separator: ",") + "+" + StepRollup.layout }

    /// Applies each transition's retractions and additions to the touched rows (the same updates as
    /// `KPIRollup.changes`, without a change list per order). This runs on the store's single writer
    /// thread for every order a write touches, so the work per part is kept small: a part goes into the
    /// finest tier's per-group change (what it adds, what it retracts), found with one hash at most
    /// (parts mostly arrive in time order, so the last bucket is remembered) and a comparison of the
    /// few group names there. Each change is then applied once to its finest row and to the coarser rows
    /// holding it. Each stored row is read and written once per call; a coarse row whose maximum the
    /// call made unknown also reads the finer rows inside it (see below).
    public func update(_ transitions: [FactsTransition], read: (RollupKey) throws -> [UInt8]?) throws -> [(RollupKey, [UInt8]?)] {
        struct Bucket: Hashable {
            var tier: Int
            var start: Micros
        }
        struct Change {
            var group: String?
            var added = KPIAccumulator()
            var retracted = KPIAccumulator()
        }
        typealias Block = [(group: String?, accumulator: KPIAccumulator)]
        /// Dimension 0 is the total, 1... follow `KPIDimension.allCases`.
        let dimensions = 1 + KPIDimension.allCases.count
        let finest = bucketWidths.count - 1
        let names = bucketWidths.map { w in (["total"] + KPIDimension.allCases.map(\.rawValue)).map { KPIRollupKey.storedDimension($0, width: w) } }
        var index: [Bucket: Int] = [:]
        var buckets: [Bucket] = []
        /// `dimensions` blocks per bucket: `blocks[bucket * dimensions + dimension]`; the same for changes (finest tier).
        var blocks: [Block] = []
        /// Per block: whether every maximum in it was known as read (a new row's are), and whether this
        /// call retracted from it: what makes it worth learning an unknown maximum back (below).
        var knewMaxima: [Bool] = []
        var retractedFrom: [Bool] = []
        var changes: [[Change]] = []
        var last: (start: Micros, position: Int)?
        func position(_ bucket: Bucket) throws -> Int {
            if let known = index[bucket] { return known }
            let p = buckets.count
            index[bucket] = p
            buckets.append(bucket)
            for d in 0..<dimensions {
                let key = RollupKey(dimension: names[bucket.tier][d], group: nil, bucketStart: bucket.start)
                let block = try read(key).map { try KPIRollupBlock.decode($0) } ?? []
                knewMaxima.append(block.allSatisfy { $0.accumulator.maxIsExact })
                retractedFrom.append(false)
                blocks.append(block)
                changes.append([])
            }
            return p
        }
        /// `counterpart`: the part this one replaces or is replaced by. In a row where both land with the
        /// same value (same bucket and group; the order changed fill or another dimension's group), their
        /// sketch updates cancel and are left out, so they cannot make the row's maximum unknown.
        func touch(_ part: KPIPart, removing: Bool, counterpart: KPIPart?) throws {
            let start = KPIRollup.bucketStart(part.at, width: bucketWidths[finest])
            let p: Int
            if let l = last, l.start == start {
                p = l.position
            } else {
                p = try position(Bucket(tier: finest, start: start))
                last = (start, p)
            }
            var cancels = false
            if let c = counterpart, c.sameSketchValue(part), KPIRollup.bucketStart(c.at, width: bucketWidths[finest]) == start { cancels = true }
            for d in 0..<dimensions {
                let group = d == 0 ? nil : part.group(KPIDimension.allCases[d - 1])
                let b = p * dimensions + d
                var j = 0
                while j < changes[b].count, changes[b][j].group != group { j += 1 }
                if j == changes[b].count { changes[b].append(Change(group: group)) }
                if cancels, d == 0 || counterpart!.group(KPIDimension.allCases[d - 1]) == group {
                    if removing { changes[b][j].retracted.addCounts(part) } else { changes[b][j].added.addCounts(part) }
                } else {
                    if removing { changes[b][j].retracted.add(part) } else { changes[b][j].added.add(part) }
                }
            }
        }
        for i in transitions.indices {
            let old = transitions[i].old.map(OrderContribution.init), new = OrderContribution(transitions[i].new)
            if old?.allocation != new.allocation {
                let o = old?.allocation.map(KPIPart.allocation), n = new.allocation.map(KPIPart.allocation)
                if let o { try touch(o, removing: true, counterpart: n) }
                if let n { try touch(n, removing: false, counterpart: o) }
            }
            if old?.shipment != new.shipment {
                let o = old?.shipment.map(KPIPart.shipment), n = new.shipment.map(KPIPart.shipment)
                if let o { try touch(o, removing: true, counterpart: n) }
                if let n { try touch(n, removing: false, counterpart: o) }
            }
        }
        func apply(_ c: Change, to b: Int) {
            var j = 0
            while j < blocks[b].count, blocks[b][j].group != c.group { j += 1 }
            if j == blocks[b].count { blocks[b].append((c.group, KPIAccumulator())) }
            // In one step, so a row's maximum is settled from the row before and the change's values,
            // whatever their order (`KPIAccumulator.apply(retracting:adding:)`).
            blocks[b][j].accumulator.apply(retracting: c.retracted, adding: c.added)
            if !c.retracted.isEmpty { retractedFrom[b] = true }
        }
        // Finest buckets by time, so the coarser rows they share take their changes in an order that does
        // not depend on the order of the transitions.
        let finestBuckets = buckets.indices.filter { buckets[$0].tier == finest }.sorted { buckets[$0].start < buckets[$1].start }
        for p in finestBuckets {
            let start = buckets[p].start
            var targets = [p]
            for tier in 0..<finest {
                targets.append(try position(Bucket(tier: tier, start: KPIRollup.bucketStart(start, width: bucketWidths[tier]))))
            }
            for d in 0..<dimensions {
                for c in changes[p * dimensions + d] {
                    for t in targets { apply(c, to: t * dimensions + d) }
                }
            }
        }
        // A coarse row left with an unknown maximum learns it from the rows of the next finer tier inside
        // it, where they tell it (`QuantileSketch.learnMax(fromParts:)`): the value retracted was in one
        // minute, whose own maximum is then unknown, but its bound is usually below another minute's known
        // maximum. Tried only when this call made the maximum unknown or retracted from the row, so its
        // cost follows the retractions, not the rows a write touches; finer tiers first, so an hour can
        // learn from quarters repaired the same way.
        for tier in stride(from: finest - 1, through: 0, by: -1) {
            let (width, finer) = (bucketWidths[tier], bucketWidths[tier + 1])
            for p in buckets.indices where buckets[p].tier == tier {
                for d in 0..<dimensions where knewMaxima[p * dimensions + d] || retractedFrom[p * dimensions + d] {
                    let b = p * dimensions + d
                    guard blocks[b].contains(where: { !$0.accumulator.maxIsExact }) else { continue }
                    var parts: [Block] = []
                    for start in stride(from: buckets[p].start, to: buckets[p].start + width, by: Int(finer)) {
                        if let q = index[Bucket(tier: tier + 1, start: start)] {
                            parts.append(blocks[q * dimensions + d])
                        } else if let bytes = try read(RollupKey(dimension: names[tier + 1][d], group: nil, bucketStart: start)) {
                            parts.append(try KPIRollupBlock.decode(bytes))
                        }
                    }
                    for j in blocks[b].indices where !blocks[b][j].accumulator.maxIsExact {
                        let group = blocks[b][j].group
                        blocks[b][j].accumulator.learnMaxima(fromParts: parts.compactMap { $0.first { $0.group == group }?.accumulator })
                    }
                }
            }
        }
        var out: [(RollupKey, [UInt8]?)] = []
        out.reserveCapacity(blocks.count)
        for (p, bucket) in buckets.enumerated() {
            for d in 0..<dimensions {
                out.append((RollupKey(dimension: names[bucket.tier][d], group: nil, bucketStart: bucket.start),
                            KPIRollupBlock.encode(blocks[p * dimensions + d])))
            }
        }
        out += try StepRollup.update(transitions, read: read)
        // In the table's key order (dimension name, then bucket).
        out.sort { $0.0.dimension != $1.0.dimension ? $0.0.dimension < $1.0.dimension : $0.0.bucketStart < $1.0.bucketStart }
        return out
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
    ///
    /// A row whose maximum is not known (a late event retracted the bucket's largest value,
    /// `KPIAccumulator.maxIsExact`) does not answer its bucket: the bucket, all its groups, is read
    /// from the next tier's rows instead (an hour from its minutes), and a minute from the orders'
    /// facts, so `max_s` is exact in every window. Tiers are read coarsest first, each once.
    public func document(_ q: KPIQuery) throws -> KPIDocument {
        let inputs = try windowInputs(q)
        return KPIReport.compute(query: q, plan: inputs.plan, rows: inputs.rows, edgeFacts: inputs.facts)
    }

    /// What a window is computed from: the plan, the rollup rows of its whole buckets and the facts of
    /// the orders at its edges. A row whose maximum is not known (a late event retracted the bucket's
    /// largest value) is deferred to the next tier, and a minute to the facts. The KPI document and
    /// `accumulators(_:)` (for /metrics) both read through here, so they cannot disagree.
    func windowInputs(_ q: KPIQuery) throws -> (plan: KPIRollupPlan, rows: [KPIRollupRow], facts: [OrderFacts]) {
        var plan = q.rollupPlan(bucketWidths: bucketWidths)
        let dimension = q.by?.rawValue ?? "total"
        var rows: [KPIRollupRow] = []
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
                for (group, acc) in block {
                    rows.append(KPIRollupRow(key: KPIRollupKey(dimension: q.by, group: group, bucketStart: key.bucketStart, bucketWidth: width),
                                             accumulator: acc))
                }
            }
            if !deferred.isEmpty { plan = plan.deferring(deferred, tier: tier) }
        }
        let facts = plan.factRanges.isEmpty ? [] : try reader.kpiFacts(in: plan.factRanges)
        return (plan, rows, facts)
    }

    /// The orders behind a figure (`allocation_delay.p95_s`, `fill_rate`, ...) in the query's window,
    /// optionally within one group of `q.by` (`.some(nil)` is the null group).
    /// Read from the store's drill rows (`DrillReader`) where it keeps them; otherwise from the window's facts.
    public func explain(_ metric: KPIMetric, _ q: KPIQuery, group: String?? = .none, limit: Int = 20) throws -> [KPIContributor] {
        if let drill = reader as? any DrillReader,
           let found = try KPIExplain.contributors(drill: drill, metric: metric, query: q, group: group, limit: limit) { return found }
        let facts = try reader.kpiFacts(in: [q.from..<q.to])
        return try KPIExplain.contributors(facts: facts, metric: metric, query: q, group: group, limit: limit)
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

    /// The text `parse` reads back.
    public var parameter: String {
        switch self {
        case .errorSpans: return "errors"
        case .errorSpansIn(let s): return "error-in:" + s
        case .spanTime(let s, let t): return "span-time:" + s + ">" + DurationText.format(t)
        }
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
        // The orders' spans in parts (a part's events and spans are held at once).
        let ids = facts.map(\.orderID)
        for start in stride(from: 0, to: ids.count, by: 2_000) {
            for (id, spans) in try traces.traceSpans(keys: Array(ids[start..<min(start + 2_000, ids.count)])) where !spans.isEmpty {
                telemetry[id] = OrderTelemetry(spans: spans)
            }
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

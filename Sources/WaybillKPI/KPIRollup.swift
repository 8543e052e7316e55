import WaybillModel

/// Identifies the rollup of one group of one dimension (or the total, `dimension == nil`) over the
/// bucket `[bucketStart, bucketStart + bucketWidth)`. `group == nil` is the null group of kpis.md.
/// Buckets of several widths live side by side (hours for long windows, minutes for their edges).
/// The store keeps all groups of a dimension and bucket in one row (`KPIRollupBlock`).
public struct KPIRollupKey: Hashable, Sendable {
    public var dimension: KPIDimension?
    public var group: String?
    public var bucketStart: Micros
    public var bucketWidth: Micros

    public init(dimension: KPIDimension?, group: String?, bucketStart: Micros, bucketWidth: Micros) {
        self.dimension = dimension
        self.group = group
        self.bucketStart = bucketStart
        self.bucketWidth = bucketWidth
    }

    /// The dimension's name, or `total`.
    public var dimensionName: String { dimension?.rawValue ?? "total" }

    /// The dimension as stored: its name and the bucket width in seconds, e.g. `warehouse@3600s`.
    public var storedDimension: String { Self.storedDimension(dimensionName, width: bucketWidth) }

    public static func storedDimension(_ name: String, width: Micros) -> String { "\(name)@\(width / 1_000_000)s" }

    /// The dimension (nil: the total) and bucket width of a stored dimension name.
    public static func parse(storedDimension: String) -> (dimension: KPIDimension?, width: Micros)? {
        guard let at = storedDimension.lastIndex(of: "@"), storedDimension.hasSuffix("s"),
              let seconds = Int64(storedDimension[storedDimension.index(after: at)..<storedDimension.index(before: storedDimension.endIndex)]),
              seconds > 0
        else { return nil }
        let name = String(storedDimension[..<at])
        if name == "total" { return (nil, seconds * 1_000_000) }
        guard let d = KPIDimension(rawValue: name) else { return nil }
        return (d, seconds * 1_000_000)
    }
}

public struct KPIRollupRow: Sendable, Equatable {
    public var key: KPIRollupKey
    public var accumulator: KPIAccumulator
    public init(key: KPIRollupKey, accumulator: KPIAccumulator) {
        self.key = key
        self.accumulator = accumulator
    }
}

public enum KPIPart: Hashable, Sendable {
    case allocation(AllocationPart)
    case shipment(ShipmentPart)

    public var at: Micros {
        switch self {
        case .allocation(let p): return p.at
        case .shipment(let p): return p.at
        }
    }

    public func group(_ d: KPIDimension) -> String? {
        switch self {
        case .allocation(let p): return p.group(d)
        case .shipment(let p): return p.group(d)
        }
    }

    /// Whether both go into the same sketch (allocation delays, shipment lags) with the same value.
    func sameSketchValue(_ o: KPIPart) -> Bool {
        switch (self, o) {
        case let (.allocation(a), .allocation(b)): return a.delay == b.delay
        case let (.shipment(a), .shipment(b)): return a.lag == b.lag
        default: return false
        }
    }
}

extension KPIAccumulator {
    public mutating func add(_ p: KPIPart) {
        switch p {
        case .allocation(let a): add(a)
        case .shipment(let s): add(s)
        }
    }

    public mutating func remove(_ p: KPIPart) {
        switch p {
        case .allocation(let a): remove(a)
        case .shipment(let s): remove(s)
        }
    }
}

/// What one rollup row must do when an order's contribution changes: retract the old parts, add the new.
public struct KPIRollupChange: Sendable, Equatable {
    public var key: KPIRollupKey
    public var removals: [KPIPart]
    public var additions: [KPIPart]

    /// Applies the change in one step (`KPIAccumulator.apply(retracting:adding:)`); afterwards an
    /// `isEmpty` accumulator's row can be deleted.
    /// A removal and an addition of the same kind and value (an order that changed group or fill but
    /// not its delay) cancel in the sketch, so they cannot make the maximum unknown.
    public func apply(to acc: inout KPIAccumulator) {
        var retracted = KPIAccumulator(), added = KPIAccumulator()
        var paired = Array(repeating: false, count: additions.count)
        for p in removals {
            if let j = additions.indices.first(where: { !paired[$0] && additions[$0].sameSketchValue(p) }) {
                paired[j] = true
                retracted.addCounts(p)
                added.addCounts(additions[j])
            } else {
                retracted.add(p)
            }
        }
        for j in additions.indices where !paired[j] { added.add(additions[j]) }
        acc.apply(retracting: retracted, adding: added)
    }
}

/// Rollup maintenance at ingest. Rows exist for the total and for every dimension, per bucket of a
/// fixed `bucketWidth` aligned to the Unix epoch.
public enum KPIRollup {
    /// A suggested bucket width: a 7-day query by warehouse reads about 2,000 rows per group, and the
    /// unaligned edges of any window read at most two buckets' worth of facts.
    public static let defaultBucketWidth: Micros = 5 * 60 * 1_000_000

    public static func bucketStart(_ t: Micros, width: Micros) -> Micros { floorDiv(t, width) * width }

    /// The rows an order part belongs to: the total and one group per dimension.
    public static func keys(of p: KPIPart, bucketWidth: Micros) -> [KPIRollupKey] {
        let b = bucketStart(p.at, width: bucketWidth)
        return [KPIRollupKey(dimension: nil, group: nil, bucketStart: b, bucketWidth: bucketWidth)]
            + KPIDimension.allCases.map { KPIRollupKey(dimension: $0, group: p.group($0), bucketStart: b, bucketWidth: bucketWidth) }
    }

    /// The row updates for an order whose facts went from `old` (nil: new order) to `new`.
    public static func changes(from old: OrderFacts?, to new: OrderFacts?, bucketWidth: Micros) -> [KPIRollupChange] {
        changes(from: old.map(OrderContribution.init), to: new.map(OrderContribution.init), bucketWidth: bucketWidth)
    }

    /// The row updates that turn rollups holding `old` into rollups holding `new` (nil: the order
    /// contributed nothing / is gone). Unchanged parts produce nothing; so does `old == new`.
    /// Rows are returned in key order so concurrent writers lock them in the same order.
    public static func changes(from old: OrderContribution?, to new: OrderContribution?, bucketWidth: Micros) -> [KPIRollupChange] {
        precondition(bucketWidth > 0, "rollup bucket width must be positive")
        var byKey: [KPIRollupKey: KPIRollupChange] = [:]
        func touch(_ p: KPIPart, removing: Bool) {
            for k in keys(of: p, bucketWidth: bucketWidth) {
                var c = byKey[k] ?? KPIRollupChange(key: k, removals: [], additions: [])
                if removing { c.removals.append(p) } else { c.additions.append(p) }
                byKey[k] = c
            }
        }
        let oldAllocation = old?.allocation, newAllocation = new?.allocation
        if oldAllocation != newAllocation {
            if let a = oldAllocation { touch(.allocation(a), removing: true) }
            if let a = newAllocation { touch(.allocation(a), removing: false) }
        }
        let oldShipment = old?.shipment, newShipment = new?.shipment
        if oldShipment != newShipment {
            if let s = oldShipment { touch(.shipment(s), removing: true) }
            if let s = newShipment { touch(.shipment(s), removing: false) }
        }
        return byKey.values.sorted { a, b in
            if a.key.bucketStart != b.key.bucketStart { return a.key.bucketStart < b.key.bucketStart }
            let da = a.key.dimension?.rawValue ?? "", db = b.key.dimension?.rawValue ?? ""
            if da != db { return da < db }
            switch (a.key.group, b.key.group) {
            case (nil, _): return b.key.group != nil
            case (_, nil): return false
            case let (x?, y?): return x < y
            }
        }
    }
}

/// Which parts of a query the rollups answer and which need the orders' facts.
///
/// Rollups come in tiers of bucket widths, coarsest first (hours, then minutes). A bucket is answered
/// from its rollup row only when it lies inside `[from, to)` and inside one step, and no coarser
/// bucket already answers its time: the plan takes whole coarse buckets, then fills each remaining
/// edge with whole buckets of the next tier. What no tier covers (sub-minute edges, buckets
/// straddling a step boundary) is answered from the facts of orders whose `allocated_at` or
/// `shipped_at` lies in `factRanges`.
public struct KPIRollupPlan: Sendable, Equatable {
    /// The tiers' bucket widths, coarsest first.
    public var bucketWidths: [Micros]
    /// Per tier, time ranges made of whole buckets of its width, ascending and disjoint; no two tiers overlap.
    /// Ranges of a tier may join across step boundaries; each bucket in them lies inside one step.
    public var rollupRanges: [[Range<Micros>]]
    /// Time ranges to read facts for, ascending and disjoint.
    public var factRanges: [Range<Micros>]

    func inRollups(_ key: KPIRollupKey) -> Bool {
        guard let tier = bucketWidths.firstIndex(of: key.bucketWidth) else { return false }
        return Self.find(key.bucketStart, in: rollupRanges[tier], end: key.bucketStart + key.bucketWidth)
    }

    func inFacts(_ t: Micros) -> Bool { Self.find(t, in: factRanges, end: t + 1) }

    static func find(_ t: Micros, in ranges: [Range<Micros>], end: Micros) -> Bool {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].lowerBound <= t && end <= ranges[lo].upperBound
    }
}

extension KPIQuery {
    public func rollupPlan(bucketWidth w: Micros) -> KPIRollupPlan { rollupPlan(bucketWidths: [w]) }

    /// The plan over rollup tiers of these widths (strictly decreasing; each should divide the one before).
    public func rollupPlan(bucketWidths widths: [Micros]) -> KPIRollupPlan {
        precondition(!widths.isEmpty && widths.allSatisfy { $0 > 0 }, "rollup bucket widths must be positive")
        precondition(zip(widths, widths.dropFirst()).allSatisfy { $0 > $1 }, "rollup bucket widths must decrease")
        var plan = KPIRollupPlan(bucketWidths: widths, rollupRanges: Array(repeating: [], count: widths.count), factRanges: [])
        for piece in step == nil ? [window] : steps { plan.cover(piece, tier: 0) }
        return plan
    }
}

extension KPIRollupPlan {
    /// Appends `r` to a list of ascending ranges, joining it to the last when they touch.
    private static func append(_ r: Range<Micros>, to list: inout [Range<Micros>]) {
        guard !r.isEmpty else { return }
        if let last = list.last, last.upperBound == r.lowerBound {
            list[list.count - 1] = last.lowerBound..<r.upperBound
        } else {
            list.append(r)
        }
    }

    /// Covers `piece` (after everything covered so far) with whole buckets of `tier`, the rest with the
    /// finer tiers, and what none covers with facts.
    mutating func cover(_ piece: Range<Micros>, tier: Int) {
        guard !piece.isEmpty else { return }
        guard tier < bucketWidths.count else { return Self.append(piece, to: &factRanges) }
        let w = bucketWidths[tier]
        let a = floorDiv(piece.lowerBound + w - 1, w) * w
        let b = floorDiv(piece.upperBound, w) * w
        if a < b {
            cover(piece.lowerBound..<a, tier: tier + 1)
            Self.append(a..<b, to: &rollupRanges[tier])
            cover(b..<piece.upperBound, tier: tier + 1)
        } else {
            cover(piece, tier: tier + 1)
        }
    }

    /// The plan with these buckets of `tier` (by their starts) no longer answered by that tier's rows
    /// but like a window's edges: by whole buckets of the finer tiers, and what none covers by facts.
    /// For rows that cannot answer their bucket (`KPIAccumulator.maxIsExact`); the whole bucket moves,
    /// every group with it, so no part is counted from both a row and the facts. Starts not of buckets
    /// the plan answers from `tier` are ignored.
    public func deferring(_ starts: some Sequence<Micros>, tier: Int) -> KPIRollupPlan {
        let w = bucketWidths[tier]
        let pieces = Set(starts).sorted().map { $0..<($0 + w) }.filter {
            Self.find($0.lowerBound, in: rollupRanges[tier], end: $0.upperBound)
        }
        guard !pieces.isEmpty else { return self }
        var finer = KPIRollupPlan(bucketWidths: bucketWidths, rollupRanges: Array(repeating: [], count: bucketWidths.count), factRanges: [])
        for piece in pieces { finer.cover(piece, tier: tier + 1) }
        var out = self
        out.rollupRanges[tier] = Self.removing(pieces, from: rollupRanges[tier])
        for t in (tier + 1)..<bucketWidths.count { out.rollupRanges[t] = Self.union(rollupRanges[t], finer.rollupRanges[t]) }
        out.factRanges = Self.union(factRanges, finer.factRanges)
        return out
    }

    /// Ascending, disjoint `ranges` without `pieces` (ascending, each inside one of them).
    private static func removing(_ pieces: [Range<Micros>], from ranges: [Range<Micros>]) -> [Range<Micros>] {
        var out: [Range<Micros>] = []
        var k = 0
        for r in ranges {
            var lower = r.lowerBound
            while k < pieces.count, pieces[k].lowerBound < r.upperBound {
                if lower < pieces[k].lowerBound { out.append(lower..<pieces[k].lowerBound) }
                lower = pieces[k].upperBound
                k += 1
            }
            if lower < r.upperBound { out.append(lower..<r.upperBound) }
        }
        return out
    }

    /// Two lists of ascending, disjoint ranges (disjoint from each other) as one, touching ranges joined.
    private static func union(_ a: [Range<Micros>], _ b: [Range<Micros>]) -> [Range<Micros>] {
        guard !b.isEmpty else { return a }
        var out: [Range<Micros>] = []
        var i = 0, j = 0
        while i < a.count || j < b.count {
            if j == b.count || (i < a.count && a[i].lowerBound < b[j].lowerBound) {
                append(a[i], to: &out)
                i += 1
            } else {
                append(b[j], to: &out)
                j += 1
            }
        }
        return out
    }

    /// The plan with every bucket deferred (`deferring`) whose rows among `rows` do not all have an
    /// exact maximum, tier by tier from the coarsest: what the rows of `dimension` (nil: the total) can answer.
    public func settled<R: Collection>(by rows: R, dimension: KPIDimension?) -> KPIRollupPlan where R.Element == KPIRollupRow {
        var plan = self
        for (tier, width) in bucketWidths.enumerated() {
            let starts = rows.lazy.filter { row in
                row.key.bucketWidth == width && row.key.dimension == dimension && (dimension != nil || row.key.group == nil)
                    && !row.accumulator.maxIsExact && plan.inRollups(row.key)
            }.map(\.key.bucketStart)
            plan = plan.deferring(starts, tier: tier)
        }
        return plan
    }
}

import WaybillModel

/// Collects order parts into KPIs: the exact reference and the rollup accumulator share the builder.
protocol KPICollector {
    init()
    mutating func add(_ p: AllocationPart)
    mutating func add(_ p: ShipmentPart)
    var kpis: KPIs { get }
}

/// The KPI state of one group over one time bucket: what a rollup row stores.
///
/// Contracts: every operation is exact on the counts and sums and commutes with the others
/// (`add`/`remove`/`merge`/`subtract` form an abelian group), so a rollup maintained by retracting an
/// order's old contribution and adding its new one equals the rollup built from the final facts,
/// in any order of events. The sketches' maximum is exact or marked not known (`maxIsExact`), never
/// guessed: a retraction of the maximum leaves it not known (see `QuantileSketch`), and a KPI query
/// then answers that bucket from the orders' facts.
/// Retract only what was added: counts are signed and do not refuse going below zero.
public struct KPIAccumulator: Sendable, Equatable, KPICollector {
    public var ordersAllocated: Int64 = 0
    public var unitsOrdered: MicroUnits = 0
    public var unitsAllocatedFirst: MicroUnits = 0
    public var fullyAllocatedFirst: Int64 = 0
    public var allocationDelay = QuantileSketch()
    public var shipments: Int64 = 0
    public var onTimeDefined: Int64 = 0
    public var onTime: Int64 = 0
    public var shipmentLag = QuantileSketch()

    static let formatVersion: UInt8 = 1

    public init() {}

    public var isEmpty: Bool {
        ordersAllocated == 0 && unitsOrdered == 0 && unitsAllocatedFirst == 0 && fullyAllocatedFirst == 0
            && allocationDelay.isEmpty && shipments == 0 && onTimeDefined == 0 && onTime == 0 && shipmentLag.isEmpty
    }

    /// Whether both distributions' maxima are exact (`QuantileSketch.maxIsExact`): only then may a
    /// query report this accumulator's `max_s`.
    public var maxIsExact: Bool { allocationDelay.maxIsExact && shipmentLag.maxIsExact }

    private mutating func apply(_ p: AllocationPart, _ sign: Int64) {
        ordersAllocated &+= sign
        unitsOrdered &+= sign &* p.unitsOrdered
        unitsAllocatedFirst &+= sign &* p.unitsAllocatedFirst
        if p.fullyAllocatedFirst { fullyAllocatedFirst &+= sign }
    }

    private mutating func apply(_ p: ShipmentPart, _ sign: Int64) {
        shipments &+= sign
        if let t = p.onTime {
            onTimeDefined &+= sign
            if t { onTime &+= sign }
        }
    }

    public mutating func add(_ p: AllocationPart) {
        apply(p, 1)
        allocationDelay.add(p.delay)
    }

    public mutating func remove(_ p: AllocationPart) {
        apply(p, -1)
        allocationDelay.remove(p.delay)
    }

    public mutating func add(_ p: ShipmentPart) {
        apply(p, 1)
        shipmentLag.add(p.lag)
    }

    public mutating func remove(_ p: ShipmentPart) {
        apply(p, -1)
        shipmentLag.remove(p.lag)
    }

    /// Adds both parts, whatever their times and groups: for a single accumulator over everything.
    /// Rollups route the parts separately (`KPIRollup.changes`).
    public mutating func add(_ c: OrderContribution) {
        if let a = c.allocation { add(a) }
        if let s = c.shipment { add(s) }
    }

    public mutating func remove(_ c: OrderContribution) {
        if let a = c.allocation { remove(a) }
        if let s = c.shipment { remove(s) }
    }

    public mutating func merge(_ o: KPIAccumulator) {
        ordersAllocated &+= o.ordersAllocated
        unitsOrdered &+= o.unitsOrdered
        unitsAllocatedFirst &+= o.unitsAllocatedFirst
        fullyAllocatedFirst &+= o.fullyAllocatedFirst
        allocationDelay.merge(o.allocationDelay)
        shipments &+= o.shipments
        onTimeDefined &+= o.onTimeDefined
        onTime &+= o.onTime
        shipmentLag.merge(o.shipmentLag)
    }

    /// Retracts `retracted` and adds `added` in one step (`QuantileSketch.apply(retracting:adding:)`):
    /// the maxima are settled once, whatever the order of the parts inside each.
    public mutating func apply(retracting retracted: KPIAccumulator, adding added: KPIAccumulator) {
        ordersAllocated &+= added.ordersAllocated &- retracted.ordersAllocated
        unitsOrdered &+= added.unitsOrdered &- retracted.unitsOrdered
        unitsAllocatedFirst &+= added.unitsAllocatedFirst &- retracted.unitsAllocatedFirst
        fullyAllocatedFirst &+= added.fullyAllocatedFirst &- retracted.fullyAllocatedFirst
        allocationDelay.apply(retracting: retracted.allocationDelay, adding: added.allocationDelay)
        shipments &+= added.shipments &- retracted.shipments
        onTimeDefined &+= added.onTimeDefined &- retracted.onTimeDefined
        onTime &+= added.onTime &- retracted.onTime
        shipmentLag.apply(retracting: retracted.shipmentLag, adding: added.shipmentLag)
    }

    /// Learns both maxima from accumulators that together hold exactly this one's parts (the finer
    /// rollup rows inside a coarse one), where they tell them (`QuantileSketch.learnMax(fromParts:)`).
    mutating func learnMaxima(fromParts parts: [KPIAccumulator]) {
        if !allocationDelay.maxIsExact { allocationDelay.learnMax(fromParts: parts.lazy.map(\.allocationDelay)) }
        if !shipmentLag.maxIsExact { shipmentLag.learnMax(fromParts: parts.lazy.map(\.shipmentLag)) }
    }

    /// Adds a part's counts and sums but not its value to the sketch: for a part whose retraction
    /// from the same accumulator carries the same value, so the two sketch updates cancel.
    mutating func addCounts(_ p: KPIPart) {
        switch p {
        case .allocation(let a): apply(a, 1)
        case .shipment(let s): apply(s, 1)
        }
    }

    public mutating func subtract(_ o: KPIAccumulator) {
        ordersAllocated &-= o.ordersAllocated
        unitsOrdered &-= o.unitsOrdered
        unitsAllocatedFirst &-= o.unitsAllocatedFirst
        fullyAllocatedFirst &-= o.fullyAllocatedFirst
        allocationDelay.subtract(o.allocationDelay)
        shipments &-= o.shipments
        onTimeDefined &-= o.onTimeDefined
        onTime &-= o.onTime
        shipmentLag.subtract(o.shipmentLag)
    }

    public var kpis: KPIs {
        KPIs(ordersAllocated: ordersAllocated, fillRate: ratio(unitsAllocatedFirst, unitsOrdered),
             orderFillRate: ratio(fullyAllocatedFirst, ordersAllocated), allocationDelay: DistributionSummary(sketch: allocationDelay),
             shipments: shipments, shipmentLag: DistributionSummary(sketch: shipmentLag), onTimeRate: ratio(onTime, onTimeDefined))
    }

    /// Compact bytes: a version byte, zig-zag varints and the two sketches.
    public var serialized: [UInt8] {
        var out = ByteSink()
        encode(into: &out)
        return out.bytes
    }

    func encode(into out: inout ByteSink) {
        out.byte(Self.formatVersion)
        out.signed(ordersAllocated)
        out.signed(unitsOrdered)
        out.signed(unitsAllocatedFirst)
        out.signed(fullyAllocatedFirst)
        out.signed(shipments)
        out.signed(onTimeDefined)
        out.signed(onTime)
        allocationDelay.encode(into: &out)
        shipmentLag.encode(into: &out)
    }

    public init(serialized bytes: [UInt8]) throws(KPIDecodingError) {
        var src = ByteSource(bytes)
        try self.init(decoding: &src)
        guard src.atEnd else { throw KPIDecodingError("\(bytes.count - src.pos) trailing bytes after the accumulator") }
    }

    init(decoding src: inout ByteSource) throws(KPIDecodingError) {
        let version = try src.byte()
        guard version == Self.formatVersion else { throw KPIDecodingError("unknown accumulator format version \(version)") }
        ordersAllocated = try src.signed()
        unitsOrdered = try src.signed()
        unitsAllocatedFirst = try src.signed()
        fullyAllocatedFirst = try src.signed()
        shipments = try src.signed()
        onTimeDefined = try src.signed()
        onTime = try src.signed()
        allocationDelay = try QuantileSketch(decoding: &src)
        shipmentLag = try QuantileSketch(decoding: &src)
    }
}

/// A stored rollup row: every group of one dimension (the total: its one group) over one bucket.
/// One row per dimension and bucket, not per group, keeps the rows a write touches few: a batch of
/// orders spread over an hour touches 60 minute rows per dimension, whatever the number of groups.
public enum KPIRollupBlock {
    static let formatVersion: UInt8 = 1

    /// A version byte, the number of groups, then per group (in `groupOrder`) a presence byte,
    /// its UTF-8 name and its accumulator. Empty accumulators are left out; nil when none is left.
    public static func encode(_ groups: [(group: String?, accumulator: KPIAccumulator)]) -> [UInt8]? {
        let kept = groups.indices.filter { !groups[$0].accumulator.isEmpty }.sorted { groupOrder(groups[$0].group, groups[$1].group) }
        guard !kept.isEmpty else { return nil }
        var out = ByteSink()
        out.bytes.reserveCapacity(kept.count * 256)
        out.byte(formatVersion)
        out.unsigned(UInt64(kept.count))
        groups.withUnsafeBufferPointer { g in
            for k in kept {
                if let group = g[k].group {
                    out.byte(1)
                    out.block(Array(group.utf8))
                } else {
                    out.byte(0)
                }
                g[k].accumulator.encode(into: &out)
            }
        }
        return out.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(KPIDecodingError) -> [(group: String?, accumulator: KPIAccumulator)] {
        var src = ByteSource(bytes)
        let version = try src.byte()
        guard version == formatVersion else { throw KPIDecodingError("unknown rollup block format version \(version)") }
        let n = try src.count()
        guard n <= bytes.count else { throw KPIDecodingError("\(n) groups in \(bytes.count) bytes") }
        var out: [(group: String?, accumulator: KPIAccumulator)] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            let group: String?
            switch try src.byte() {
            case 0: group = nil
            case 1: group = String(decoding: try src.block(), as: UTF8.self)
            case let b: throw KPIDecodingError("group presence byte \(b) at byte \(src.pos - 1)")
            }
            out.append((group, try KPIAccumulator(decoding: &src)))
        }
        guard src.atEnd else { throw KPIDecodingError("\(bytes.count - src.pos) trailing bytes after the rollup block") }
        return out
    }
}

/// The reference collector: keeps every value and computes exact quantiles.
struct ExactKPICollector: KPICollector {
    var ordersAllocated: Int64 = 0
    var unitsOrdered: MicroUnits = 0
    var unitsAllocatedFirst: MicroUnits = 0
    var fullyAllocatedFirst: Int64 = 0
    var delays: [Int64] = []
    var shipments: Int64 = 0
    var onTimeDefined: Int64 = 0
    var onTime: Int64 = 0
    var lags: [Int64] = []

    mutating func add(_ p: AllocationPart) {
        ordersAllocated += 1
        unitsOrdered += p.unitsOrdered
        unitsAllocatedFirst += p.unitsAllocatedFirst
        if p.fullyAllocatedFirst { fullyAllocatedFirst += 1 }
        delays.append(p.delay)
    }

    mutating func add(_ p: ShipmentPart) {
        shipments += 1
        if let t = p.onTime {
            onTimeDefined += 1
            if t { onTime += 1 }
        }
        lags.append(p.lag)
    }

    var kpis: KPIs {
        KPIs(ordersAllocated: ordersAllocated, fillRate: ratio(unitsAllocatedFirst, unitsOrdered),
             orderFillRate: ratio(fullyAllocatedFirst, ordersAllocated), allocationDelay: DistributionSummary(exact: delays),
             shipments: shipments, shipmentLag: DistributionSummary(exact: lags), onTimeRate: ratio(onTime, onTimeDefined))
    }
}

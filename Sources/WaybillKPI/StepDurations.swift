import WaybillModel
import WaybillStore

/// One finished step of an order's lifecycle: from one stage reached to the next stage reached, in
/// lifecycle order (stages the order skipped are skipped: `accepted` → `allocated` when it was never
/// `validated`). Each stage's time is the earliest event of it (`OrderFacts.stageTimes`).
public struct LifecycleStep: Hashable, Sendable {
    public var from: Stage
    public var to: Stage
    public var start: Micros
    public var end: Micros
    /// `end - start`, 0 when a system's clock put the later stage earlier (like kpis.md's delays).
    public var gap: Micros { Swift.max(0, end - start) }
}

extension OrderFacts {
    /// The finished steps, in lifecycle order.
    public var lifecycleSteps: [LifecycleStep] {
        // The stages with their times, by stage (no lookups after the sort: this runs twice per order per write).
        let reached = stageTimes.sorted { $0.key < $1.key }
        var out: [LifecycleStep] = []
        out.reserveCapacity(reached.count)
        for (a, b) in zip(reached, reached.dropFirst()) {
            out.append(LifecycleStep(from: a.key, to: b.key, start: a.value, end: b.value))
        }
        return out
    }

    /// The warehouse an order's steps are compared at: where it was first allocated, else first shipped from.
    public var stepWarehouse: String? { allocationWarehouse ?? shipmentWarehouse }
}

/// The durations of lifecycle steps per warehouse, kept as rollup rows beside the KPI rows (in the same
/// transaction as the facts, through `KPIFactsRollup`): one row per hour (`steps@3600s`), holding per
/// (from, to, warehouse) a sketch of the gaps of the steps that ended in that hour. An order's step is
/// retracted and added again when its stage times or its warehouse change, like the KPI parts.
public enum StepRollup {
    public static let bucketWidth: Micros = 3_600_000_000
    public static let dimension = "steps@3600s"
    /// Part of `KPIFactsRollup.layout`: changing the rows' meaning rebuilds them.
    public static let layout = "steps1"

    public struct Key: Hashable, Sendable, Comparable {
        public var from: Stage
        public var to: Stage
        public var warehouse: String?
        public static func < (a: Key, b: Key) -> Bool {
            if a.from != b.from { return a.from < b.from }
            if a.to != b.to { return a.to < b.to }
            switch (a.warehouse, b.warehouse) {
            case (nil, nil): return false
            case (nil, _): return true
            case (_, nil): return false
            case let (x?, y?): return x < y
            }
        }
    }

    /// The row updates for these transitions (`FactsRollup.update`).
    public static func update(_ transitions: [FactsTransition], read: (RollupKey) throws -> [UInt8]?) throws -> [(RollupKey, [UInt8]?)] {
        struct Change {
            var added = QuantileSketch()
            var retracted = QuantileSketch()
        }
        var changes: [Micros: [Key: Change]] = [:]
        func steps(_ f: OrderFacts?) -> [(Key, Micros, Micros)] {
            guard let f else { return [] }
            let w = f.stepWarehouse
            return f.lifecycleSteps.map { (Key(from: $0.from, to: $0.to, warehouse: w), KPIRollup.bucketStart($0.end, width: bucketWidth), $0.gap) }
        }
        for t in transitions {
            let old = steps(t.old), new = steps(t.new)
            // Unchanged steps (same key, bucket and gap) are left alone; the rest retracted and added.
            var remaining = new
            for o in old {
                if let j = remaining.firstIndex(where: { $0 == o }) {
                    remaining.remove(at: j)
                } else {
                    changes[o.1, default: [:]][o.0, default: Change()].retracted.add(o.2)
                }
            }
            for n in remaining { changes[n.1, default: [:]][n.0, default: Change()].added.add(n.2) }
        }
        var out: [(RollupKey, [UInt8]?)] = []
        for (bucket, byKey) in changes.sorted(by: { $0.key < $1.key }) {
            let key = RollupKey(dimension: dimension, group: nil, bucketStart: bucket)
            // Only the sketches of the changed keys are decoded and encoded again; the others keep their
            // stored bytes (a sketch's encoding is canonical, so the row's bytes are the same as when
            // every entry was decoded and encoded: the writer thread spent a fifth of its time so).
            // Entries keep slices of the row as read: only the changed sketches are copied out and in.
            var entries = try read(key).map(rawEntries) ?? []
            for (k, c) in byKey {
                var i = 0, hi = entries.count  // the first entry not below k
                while i < hi {
                    let mid = (i + hi) / 2
                    if entries[mid].key < k { i = mid + 1 } else { hi = mid }
                }
                let found = i < entries.count && entries[i].key == k
                var s = found ? try QuantileSketch(serialized: Array(entries[i].bytes)) : QuantileSketch()
                s.apply(retracting: c.retracted, adding: c.added)
                if s.isEmpty {
                    if found { entries.remove(at: i) }
                } else if found {
                    entries[i].bytes = s.serialized[...]
                } else {
                    entries.insert((k, s.serialized[...]), at: i)
                }
            }
            out.append((key, encode(entries: entries)))
        }
        return out
    }

    /// A row's entries with each sketch's bytes as stored (slices of `bytes`), by key (sorted again if a row is not).
    static func rawEntries(_ bytes: [UInt8]) throws -> [(key: Key, bytes: ArraySlice<UInt8>)] {
        var out: [(key: Key, bytes: ArraySlice<UInt8>)] = []
        try entries(bytes) { out.append(($0, $1)) }
        if !out.isEmpty, zip(out, out.dropFirst()).contains(where: { !($0.key < $1.key) }) { out.sort { $0.key < $1.key } }
        return out
    }

    /// Encodes entries that are sorted by key, with no empty sketch (as `encode` writes them).
    static func encode(entries: [(key: Key, bytes: ArraySlice<UInt8>)]) -> [UInt8]? {
        guard !entries.isEmpty else { return nil }
        var out = ByteSink()
        out.bytes.reserveCapacity(entries.reduce(8) { $0 + $1.bytes.count + 16 })
        out.byte(formatVersion)
        out.unsigned(UInt64(entries.count))
        for (k, s) in entries {
            put(k, &out)
            out.block(s)
        }
        return out.bytes
    }

    private static func put(_ k: Key, _ out: inout ByteSink) {
        out.byte(UInt8(k.from.rawValue))
        out.byte(UInt8(k.to.rawValue))
        if let w = k.warehouse {
            out.byte(1)
            out.block(Array(w.utf8))
        } else {
            out.byte(0)
        }
    }

    static let formatVersion: UInt8 = 1

    /// A version byte, the number of entries, then per entry (by key): the two stages' ranks, a presence
    /// byte and the warehouse's UTF-8 name, and the sketch's bytes behind their length (so a reader skips
    /// the sketches it does not need). Empty sketches are left out; nil when none is left.
    public static func encode(_ block: [Key: QuantileSketch]) -> [UInt8]? {
        // Sorting the keys alone: sorting (key, sketch) pairs copied sketches on every move.
        let kept = block.keys.filter { !block[$0]!.isEmpty }.sorted()
        guard !kept.isEmpty else { return nil }
        var out = ByteSink()
        out.byte(formatVersion)
        out.unsigned(UInt64(kept.count))
        for k in kept {
            put(k, &out)
            out.block(block[k]!.serialized)
        }
        return out.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws -> [Key: QuantileSketch] {
        var out: [Key: QuantileSketch] = [:]
        try decode(bytes) { _ in true } each: { out[$0] = $1 }
        return out
    }

    /// Calls `each` with the entries whose key `wanted` accepts, decoding only their sketches.
    public static func decode(_ bytes: [UInt8], wanted: (Key) -> Bool, each: (Key, QuantileSketch) throws -> Void) throws {
        try entries(bytes) { key, raw in
            if wanted(key) { try each(key, try QuantileSketch(serialized: Array(raw))) }
        }
    }

    /// Calls `each` with every entry's key and its sketch's bytes, undecoded.
    static func entries(_ bytes: [UInt8], each: (Key, ArraySlice<UInt8>) throws -> Void) throws {
        var src = ByteSource(bytes)
        let version = try src.byte()
        guard version == formatVersion else { throw KPIDecodingError("unknown step rollup format version \(version)") }
        let n = try src.count()
        guard n <= bytes.count else { throw KPIDecodingError("\(n) step entries in \(bytes.count) bytes") }
        for _ in 0..<n {
            let a = try src.byte(), b = try src.byte()
            guard let from = Stage(rawValue: Int(a)), let to = Stage(rawValue: Int(b)) else {
                throw KPIDecodingError("stage ranks \(a), \(b) at byte \(src.pos - 2)")
            }
            let warehouse: String?
            switch try src.byte() {
            case 0: warehouse = nil
            case 1: warehouse = String(decoding: try src.block(), as: UTF8.self)
            case let p: throw KPIDecodingError("warehouse presence byte \(p) at byte \(src.pos - 1)")
            }
            let key = Key(from: from, to: to, warehouse: warehouse)
            let length = try src.count()
            try each(key, try src.raw(length))
        }
        guard src.atEnd else { throw KPIDecodingError("\(bytes.count - src.pos) trailing bytes after the step rollup") }
    }
}

/// Compares each step of an order with the same step's typical duration (`StepDocument`), from the
/// step rollup rows: the whole hours of the 7 days before the step ended, at the order's warehouse
/// (every warehouse while it has none). One read of rows covers every step of the order.
public struct StepComparison: Sendable {
    public static let window: Micros = 7 * 86_400_000_000
    let reader: any RollupReader

    public init(reader: any RollupReader) { self.reader = reader }

    /// The window of a step that ended (or, in progress, started) at `t`: whole hours within the 7 days before it.
    public static func window(before t: Micros) -> Range<Micros> {
        let w = StepRollup.bucketWidth
        let lo = floorDiv(t - window + w - 1, w) * w
        return lo..<Swift.max(lo, KPIRollup.bucketStart(t, width: w))
    }

    public func steps(_ facts: OrderFacts) throws -> [StepDocument] {
        let finished = facts.lifecycleSteps
        let open: (from: Stage, since: Micros)? = facts.state.flatMap { s in
            s == .invoiced || s == .cancelled ? nil : facts.stateSince.map { (s, $0) }
        }
        guard !finished.isEmpty || open != nil else { return [] }
        let warehouse = facts.stepWarehouse
        let windows = finished.map { Self.window(before: $0.end) } + (open.map { [Self.window(before: $0.since)] } ?? [])
        let lo = windows.map(\.lowerBound).min()!, hi = windows.map(\.upperBound).max()!
        var rows: [(bucket: Micros, key: StepRollup.Key, sketch: QuantileSketch)] = []
        if lo < hi {
            let pairs = Set(finished.map { [$0.from.rawValue, $0.to.rawValue] })
            // Context, not a KPI: the rows as last written do (at most one rollup window behind, docs/storage.md).
            for (key, bytes) in try reader.contextRollupRows(dimension: StepRollup.dimension, in: [lo..<hi]) {
                try StepRollup.decode(bytes) { k in
                    (warehouse == nil || k.warehouse == warehouse) && (pairs.contains([k.from.rawValue, k.to.rawValue]) || k.from == open?.from)
                } each: { rows.append((key.bucketStart, $0, $1)) }
            }
        }
        func typical(_ window: Range<Micros>, _ matches: (StepRollup.Key) -> Bool) -> QuantileSketch {
            var s = QuantileSketch()
            for r in rows where window.contains(r.bucket) && matches(r.key) { s.merge(r.sketch) }
            return s
        }
        func seconds(_ v: Double?) -> Double? { v.map { ($0 / 1e6 * 1000).rounded() / 1000 } }
        var out: [StepDocument] = []
        for (step, window) in zip(finished, windows) {
            let s = typical(window) { $0.from == step.from && $0.to == step.to }
            let p90 = s.quantile(percent: 90)
            out.append(StepDocument(from: step.from.name, to: step.to.name, startedAt: RFC3339.format(step.start), endedAt: RFC3339.format(step.end),
                                    gapSeconds: Double(step.gap) / 1e6, warehouse: warehouse,
                                    windowFrom: RFC3339.format(window.lowerBound), windowTo: RFC3339.format(window.upperBound),
                                    samples: Int(s.count), p50Seconds: seconds(s.quantile(percent: 50)), p90Seconds: seconds(p90),
                                    verdict: StepDocument.verdict(gap: step.gap, p90: p90.map { Micros($0) }, samples: Int(s.count))))
        }
        if let open, let window = windows.last {
            let s = typical(window) { $0.from == open.from }
            let p90 = s.quantile(percent: 90).map { Micros($0) }
            var doc = StepDocument(from: open.from.name, to: nil, startedAt: RFC3339.format(open.since), endedAt: nil, gapSeconds: nil,
                                   warehouse: warehouse, windowFrom: RFC3339.format(window.lowerBound), windowTo: RFC3339.format(window.upperBound),
                                   samples: Int(s.count), p50Seconds: seconds(s.quantile(percent: 50)), p90Seconds: seconds(p90.map(Double.init)),
                                   verdict: .inProgress)
            if let p90, s.count >= StepDocument.minimumSamples {
                let t = StepDocument.thresholds(p90: p90)
                doc.slowAfter = RFC3339.format(open.since + t.slow)
                doc.verySlowAfter = RFC3339.format(open.since + t.verySlow)
            }
            out.append(doc)
        }
        return out
    }
}

import Foundation

/// A compact binary form of `OrderFacts` (the SQLite store's `orders.facts`, format 3; format 2 stays
/// readable): about 200 bytes for a whole order's facts, written and read without a parser or a
/// compressor. Decoding refuses (returns nil for) any malformed value instead of trapping.
///
/// ```
/// value    = 0x03 flags(varint) [order(str)] n(varint) base(zigzag) [first] [last] [released]
///            [accepted] [allocation] [shipment] stages types sources
/// flags    = 1 first, 2 last, 4 released, 8 accepted, 16 allocation, 32 shipment; 64: no order id (the
///            reader knows it: the SQLite row's `order_id`)
/// time     = zigzag varint delta from `base` (the earliest event time, or 0)
/// accepted = ref channel(ostr) customer(ostr) region(ostr) promised(otime) count { line(str) sku(ostr) qty(num) }
/// allocation = ref warehouse(ostr) count { line(str) sku(ostr) qty(num) warehouse(ostr) }
/// shipment = ref warehouse(ostr) carrier(ostr) tracking(ostr)
/// ref      = time id(str) source(word)
/// stages   = count { stage(byte) time }
/// types, sources = count { word }   (sorted; word = code(varint): 0 then str, else `words[code - 1]`)
/// str, ostr = c(varint): 0 none (ostr only) | odd: the ((c - 1) / 2)-th literal of this value |
///            even: a literal of c/2 - 1 bytes of utf8, numbered in order of appearance
/// otime = 0 (none) | 1 time
/// (format 2 = the same with str = len(varint) utf8 and ostr = 0 | len+1 utf8, every string a literal:
/// an order's SKUs and warehouses were written again in each line of its allocation)
/// num = varint 2q for an integral 0 <= q < 2^52, else 1 then the IEEE bits (8 bytes, little endian)
/// ```
///
/// Format 4 is format 3 without what an `orders` row holds in columns beside the value (`RowColumns`:
/// first and last event time, event count, each stage's time, the types and sources), which the
/// reader passes:
/// ```
/// value4   = 0x04 flags(varint) [order(str)] [accepted] [allocation] [shipment]
/// ref      = id(str) source(word)   (the time is the row's column of the section's stage)
/// ```
/// no n, base (the row's first time), first, last, released (the released column), stages (the
/// stage columns), types or sources. An encoder writes it only for facts the columns hold exactly
/// (`RowColumns.hold`), else format 3.
public enum OrderFactsBinary {
    /// Words coded as one byte in `types`, `sources` and refs' sources (code = index + 1). Append only:
    /// stored values refer to these positions.
    static let words: [String] = [
        "order.accepted", "order.validated", "order.credit_checked", "order.allocated", "order.backordered",
        "order.released", "order.picked", "order.short_picked", "order.packed", "order.shipped", "order.delivered",
        "order.invoiced", "order.cancelled",
        "oms", "allocation", "wms", "tms", "erp", "wms-central", "wms-east", "wms-north", "wms-south", "wms-west", "finance",
    ]
    static let wordCodes: [String: Int] = Dictionary(uniqueKeysWithValues: words.enumerated().map { ($1, $0 + 1) })

    /// What an `orders` row holds in columns beside its facts: `first_time`, `last_time`, `event_count`,
    /// one column per stage (`stages[stage.rawValue - 1]`), where the columns of accepted, allocated,
    /// released and shipped hold the facts' `acceptedAt`, `allocatedAt`, `releasedAt` and `shippedAt`;
    /// and the `types` and `sources` sets (coded words, `|` between them). A value of format 4 leaves
    /// these out and its reader passes them.
    public struct RowColumns: Equatable, Sendable {
        public var first: Micros
        public var last: Micros
        public var count: Int
        public var stages: [Micros?]
        public var types: Set<String>
        public var sources: Set<String>

        public init(first: Micros, last: Micros, count: Int, stages: [Micros?], types: Set<String>, sources: Set<String>) {
            self.first = first
            self.last = last
            self.count = count
            self.stages = stages
            self.types = types
            self.sources = sources
        }

        /// The columns' values for `f`.
        public init(_ f: OrderFacts) {
            self.init(first: f.firstEventAt ?? 0, last: f.lastEventAt ?? 0, count: f.eventCount,
                      stages: Stage.allCases.map { RowColumns.column($0, of: f) }, types: f.types, sources: f.sources)
        }

        public subscript(_ s: Stage) -> Micros? { s.rawValue - 1 < stages.count ? stages[s.rawValue - 1] : nil }

        /// The time the column of `stage` holds for `f`.
        public static func column(_ stage: Stage, of f: OrderFacts) -> Micros? {
            switch stage {
            case .accepted: return f.acceptedAt
            case .allocated: return f.allocatedAt
            case .released: return f.releasedAt
            case .shipped: return f.shippedAt
            default: return f.stageTimes[stage]
            }
        }

        /// Whether the columns hold exactly what format 4 leaves out of `f`: both event times, each
        /// stage's time (the columns of the four stages with sections hold the sections' times), and the
        /// types and sources (a word with a `|` would read back as two).
        public static func hold(_ f: OrderFacts) -> Bool {
            guard f.firstEventAt != nil, f.lastEventAt != nil, f.eventCount >= 0 else { return false }
            guard Stage.allCases.allSatisfy({ column($0, of: f) == f.stageTimes[$0] }) else { return false }
            return f.types.allSatisfy { !$0.utf8.contains(124) } && f.sources.allSatisfy { !$0.utf8.contains(124) }
        }
    }

    /// `omittingOrderID`: the value leaves out the order id, which the reader must then pass to `decode`.
    /// `omittingRowColumns`: format 4 when the row's columns hold what it leaves out (`RowColumns.hold`),
    /// which the reader must then pass to `decode`; format 3 otherwise.
    public static func encode(_ f: OrderFacts, omittingOrderID: Bool = false, omittingRowColumns: Bool = false) -> [UInt8] {
        let short = omittingRowColumns && RowColumns.hold(f)
        var w = Writer()
        w.short = short
        w.out.bytes.reserveCapacity(192)
        w.out.byte(short ? 4 : 3)
        var flags: UInt64 = 0
        if f.firstEventAt != nil { flags |= 1 }
        if f.lastEventAt != nil { flags |= 2 }
        if f.releasedAt != nil { flags |= 4 }
        if f.accepted != nil { flags |= 8 }
        if f.firstAllocation != nil { flags |= 16 }
        if f.firstShipment != nil { flags |= 32 }
        if omittingOrderID { flags |= 64 }
        w.out.unsigned(flags)
        if !omittingOrderID { w.str(f.orderID) }
        let base = f.firstEventAt ?? 0
        w.base = base
        if !short {
            w.out.unsigned(UInt64(max(0, f.eventCount)))
            w.out.signed(base)
            if let t = f.firstEventAt { w.time(t) }
            if let t = f.lastEventAt { w.time(t) }
            if let t = f.releasedAt { w.time(t) }
        }
        if let a = f.accepted {
            w.ref(a.ref)
            w.ostr(a.channel)
            w.ostr(a.customer)
            w.ostr(a.region)
            w.otime(a.promisedShipBy)
            w.out.unsigned(UInt64(a.lines.count))
            for l in a.lines {
                w.str(l.line)
                w.ostr(l.sku)
                w.num(l.qty)
            }
        }
        if let a = f.firstAllocation {
            w.ref(a.ref)
            w.ostr(a.warehouse)
            w.out.unsigned(UInt64(a.lines.count))
            for l in a.lines {
                w.str(l.line)
                w.ostr(l.sku)
                w.num(l.qtyAllocated)
                w.ostr(l.warehouse)
            }
        }
        if let s = f.firstShipment {
            w.ref(s.ref)
            w.ostr(s.warehouse)
            w.ostr(s.carrier)
            w.ostr(s.tracking)
        }
        if !short {
            let stages = f.stageTimes.sorted { $0.key.rawValue < $1.key.rawValue }
            w.out.unsigned(UInt64(stages.count))
            for (stage, t) in stages {
                w.out.byte(UInt8(stage.rawValue))
                w.time(t)
            }
            for set in [f.types, f.sources] {
                w.out.unsigned(UInt64(set.count))
                for s in set.sorted() { w.word(s) }
            }
        }
        return w.out.bytes
    }

    /// The facts of a format-2, 3 or 4 value; nil when it is not one or is malformed, or leaves out its
    /// order id and `orderID` is nil, or is of format 4 and `row` is nil.
    public static func decode(_ b: [UInt8], orderID: String? = nil, row: RowColumns? = nil) -> OrderFacts? {
        guard let v = b.first, v >= 2 && v <= 4 else { return nil }
        if v == 4 && row == nil { return nil }
        return try? decodeValue(b, referenced: v >= 3, orderID: orderID, row: v == 4 ? row : nil)
    }

    private static func decodeValue(_ b: [UInt8], referenced: Bool, orderID: String?, row: RowColumns?) throws(ByteDecodingError) -> OrderFacts {
        var r = Reader(s: ByteSource(b), referenced: referenced)
        r.s.pos = 1
        let flags = try r.s.unsigned()
        var f: OrderFacts
        if flags & 64 != 0 {
            guard referenced, let orderID else { throw ByteDecodingError("the value leaves out its order id") }
            f = OrderFacts(orderID: orderID)
        } else {
            f = OrderFacts(orderID: try r.str())
        }
        /// A section's time: in the value, or (format 4) the row's column of its stage.
        func refTime(_ stage: Stage) throws(ByteDecodingError) -> Micros? {
            guard let row else { return nil }
            guard let t = row[stage] else { throw ByteDecodingError("the row has no \(stage.name) time for its section") }
            return t
        }
        if let row {
            f.eventCount = row.count
            r.base = row.first
            f.firstEventAt = row.first
            f.lastEventAt = row.last
            f.releasedAt = row[.released]
            for s in Stage.allCases { if let t = row[s] { f.stageTimes[s] = t } }
            f.types = row.types
            f.sources = row.sources
        } else {
            f.eventCount = try r.s.count()
            r.base = try r.s.signed()
            if flags & 1 != 0 { f.firstEventAt = try r.time() }
            if flags & 2 != 0 { f.lastEventAt = try r.time() }
            if flags & 4 != 0 { f.releasedAt = try r.time() }
        }
        if flags & 8 != 0 {
            let ref = try r.ref(time: try refTime(.accepted))
            let channel = try r.ostr(), customer = try r.ostr(), region = try r.ostr()
            let promised = try r.otime()
            var lines: [OrderLine] = []
            for _ in 0..<(try r.count()) {
                lines.append(OrderLine(line: try r.str(), sku: try r.ostr(), qty: try r.num()))
            }
            f.accepted = AcceptedFacts(ref: ref, channel: channel, customer: customer, region: region, promisedShipBy: promised, lines: lines)
        }
        if flags & 16 != 0 {
            let ref = try r.ref(time: try refTime(.allocated))
            let warehouse = try r.ostr()
            var lines: [AllocatedLine] = []
            for _ in 0..<(try r.count()) {
                lines.append(AllocatedLine(line: try r.str(), sku: try r.ostr(), qtyAllocated: try r.num(), warehouse: try r.ostr()))
            }
            f.firstAllocation = AllocationFacts(ref: ref, warehouse: warehouse, lines: lines)
        }
        if flags & 32 != 0 {
            f.firstShipment = ShipmentFacts(ref: try r.ref(time: try refTime(.shipped)), warehouse: try r.ostr(), carrier: try r.ostr(),
                                            tracking: try r.ostr())
        }
        if row == nil {
            for _ in 0..<(try r.count()) {
                guard let stage = Stage(rawValue: Int(try r.s.byte())) else { throw ByteDecodingError("unknown stage") }
                f.stageTimes[stage] = try r.time()
            }
            for _ in 0..<(try r.count()) { f.types.insert(try r.word()) }
            for _ in 0..<(try r.count()) { f.sources.insert(try r.word()) }
        }
        guard r.s.atEnd else { throw ByteDecodingError("trailing bytes") }
        return f
    }

    private struct Writer {
        var out = ByteSink()
        var base: Micros = 0
        /// Format 4: refs leave out their time (the row's stage column).
        var short = false
        /// The literals written so far, in order (a value holds a few dozen short strings: a linear
        /// search is cheaper than hashing each string, which took half of the encoder's time).
        var literals: [String] = []
        mutating func str(_ s: String) { ostr(s) }
        mutating func ostr(_ s: String?) {
            guard var s else { out.byte(0); return }
            if let i = literals.firstIndex(of: s) {
                out.unsigned(UInt64(i) << 1 | 1)
                return
            }
            literals.append(s)
            s.withUTF8 { p in
                out.unsigned((UInt64(p.count) + 1) << 1)
                out.bytes.append(contentsOf: p)
            }
        }
        mutating func word(_ s: String) {
            if let c = OrderFactsBinary.wordCodes[s] { out.unsigned(UInt64(c)) } else { out.byte(0); str(s) }
        }
        mutating func time(_ t: Micros) { out.signed(t &- base) }
        mutating func otime(_ t: Micros?) {
            guard let t else { out.byte(0); return }
            out.byte(1)
            time(t)
        }
        mutating func ref(_ r: EventRef) {
            if !short { time(r.time) }
            str(r.id)
            word(r.source)
        }
        mutating func num(_ q: Double) {
            if q >= 0, q < 4_503_599_627_370_496, q.rounded(.towardZero) == q, !(q == 0 && q.sign == .minus) {
                out.unsigned(UInt64(q) << 1)
            } else {
                out.byte(1)
                var bits = q.bitPattern
                for _ in 0..<8 {
                    out.byte(UInt8(truncatingIfNeeded: bits))
                    bits >>= 8
                }
            }
        }
    }

    private struct Reader {
        var s: ByteSource
        /// Format 3: strings may refer to earlier literals (`literals`).
        let referenced: Bool
        var base: Micros = 0
        var literals: [String] = []
        init(s: ByteSource, referenced: Bool) {
            self.s = s
            self.referenced = referenced
        }
        mutating func count() throws(ByteDecodingError) -> Int {
            let n = try s.count()
            guard n <= s.bytes.count else { throw ByteDecodingError("count \(n) out of range") }
            return n
        }
        mutating func str() throws(ByteDecodingError) -> String {
            guard referenced else { return String(decoding: try s.raw(try s.count()), as: UTF8.self) }
            guard let v = try ostr() else { throw ByteDecodingError("a required string is missing") }
            return v
        }
        mutating func ostr() throws(ByteDecodingError) -> String? {
            let n = try s.count()
            guard n != 0 else { return nil }
            guard referenced else { return String(decoding: try s.raw(n - 1), as: UTF8.self) }
            if n & 1 == 1 {
                guard n >> 1 < literals.count else { throw ByteDecodingError("reference to literal \(n >> 1) of \(literals.count)") }
                return literals[n >> 1]
            }
            let v = String(decoding: try s.raw((n >> 1) - 1), as: UTF8.self)
            literals.append(v)
            return v
        }
        mutating func word() throws(ByteDecodingError) -> String {
            let c = try s.count()
            if c == 0 { return try str() }
            guard c <= OrderFactsBinary.words.count else { throw ByteDecodingError("unknown word \(c)") }
            return OrderFactsBinary.words[c - 1]
        }
        mutating func time() throws(ByteDecodingError) -> Micros { base &+ (try s.signed()) }
        mutating func otime() throws(ByteDecodingError) -> Micros? { try s.byte() == 0 ? nil : try time() }
        /// A ref with its time in the value, or (format 4) `time`.
        mutating func ref(time given: Micros?) throws(ByteDecodingError) -> EventRef {
            let t: Micros
            if let given { t = given } else { t = try time() }
            return EventRef(time: t, id: try str(), source: try word())
        }
        mutating func num() throws(ByteDecodingError) -> Double {
            let v = try s.unsigned()
            if v & 1 == 0 { return Double(v >> 1) }
            guard v == 1 else { throw ByteDecodingError("bad number tag") }
            var bits: UInt64 = 0
            for (i, b) in try s.raw(8).enumerated() { bits |= UInt64(b) << (8 * UInt64(i)) }
            return Double(bitPattern: bits)
        }
    }
}

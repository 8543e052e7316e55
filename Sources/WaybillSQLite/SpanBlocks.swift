import CSQLite
import Foundation
import WaybillModel
import WaybillStore

/// Compact span storage (schema version 6).
///
/// Spans are stored in **blocks**: one `span_blocks` row holds the spans of one trace that arrived in
/// one write, whose starts lie within `SpanBlocks.maxWidth` of each other. The trace id is stored once
/// per block (16 bytes), so are the row and index overheads. The body is binary:
///
/// ```
/// body    = version(1) nStrings(varint) { len(varint) utf8 }* nSpans(varint) span*
/// span    = flags(varint) spanID parent? startDelta(varint) duration(zigzag) name(ref) resource(ref)
///           [message(ref)] [events(ref)] [links(ref)] nAttrs(varint) { key(ref) value }*
/// flags   = status(bits 0-1) hasParent(2) parentInBlock(3) idAsText(4) parentAsText(5) message(6) events(7) links(8)
/// spanID  = 8 raw bytes, or a ref to the text when the id is not 16 lowercase hex digits
/// parent  = the index of the parent span in this block, 8 raw bytes, or a ref to the text
/// ref     = varint: (dictionary id << 1), or (index into the block's strings << 1) | 1
/// value   = 0 null | 1 false | 2 true | 3 integer(zigzag) | 4 double(8 bytes LE) | 5 string(ref) | 6 JSON(ref)
/// ```
///
/// Attribute keys, span names and resources (service name plus resource attributes, as sorted JSON)
/// are dictionary-coded in `span_dict`, so a repeated resource costs one or two bytes a span. Values
/// are coded in the block's own string table, so an order id repeated on every span of a trace is
/// stored once per block. Long strings and, past a size limit, new ones stay in the block instead of
/// the dictionary, so a high-cardinality attribute cannot grow it without bound.
enum SpanBlocks {
    static let formatVersion: UInt8 = 1
    /// Most time between the first and the last start in one block: a read of spans starting in a
    /// window looks at blocks starting up to this much earlier.
    static let maxWidth: Micros = 600_000_000
    /// Most spans in one block.
    static let maxSpans = 512
    /// Spans of a trace that arrive after its last written block join that block (rewritten) while it holds
    /// at most this many; past it they start a new block. This keeps traces whose spans arrive a few at
    /// a time (one request per service) compact, at a bounded cost of re-encoding.
    static let maxMergedSpans = 32
    /// Strings longer than this (UTF-8 bytes) are never dictionary-coded.
    static let maxDictString = 128
    /// Resources whose JSON is longer than this are never dictionary-coded.
    static let maxDictResource = 8192
    /// Beyond this many entries, new strings and resources stay in their blocks.
    static let maxDictEntries = 200_000

    enum Kind: Int64 { case string = 0, resource = 1 }

    /// Whether `later` (not before `first`) may share a block with it; extreme times never overflow.
    static func within(_ first: Micros, _ later: Micros) -> Bool {
        let (d, overflow) = later.subtractingReportingOverflow(first)
        return !overflow && d <= maxWidth
    }

    /// The earliest start of a block that may hold a span starting at `t`.
    static func earliestBlockStart(for t: Micros) -> Micros {
        let (d, overflow) = t.subtractingReportingOverflow(maxWidth)
        return overflow ? Micros.min : d
    }

    /// A dictionary entry: a string, or a resource.
    enum Entry: Sendable {
        case string(String)
        case resource(service: String, attributes: [String: JSONValue])
    }

    // MARK: Ids

    /// The bytes of `count` bytes written as lowercase hex, or nil when `s` is anything else (stored as text).
    static func idBytes(_ s: String, count: Int) -> [UInt8]? {
        let u = s.utf8
        guard u.count == count * 2 else { return nil }
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        var hi: UInt8 = 0
        for c in u {
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            default: return nil
            }
            if i & 1 == 0 { hi = v } else { out[i >> 1] = hi << 4 | v }
            i += 1
        }
        return out
    }

    static func hex<C: Collection<UInt8>>(_ b: C) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(b.count * 2)
        for c in b { out.append(digits[Int(c >> 4)]); out.append(digits[Int(c & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Binds a trace id as the `trace` column stores it: 16 bytes, or the text when it is not 32 lowercase hex digits.
    static func bindTrace(_ st: Statement, _ i: Int32, _ traceID: String) {
        if let b = idBytes(traceID, count: 16) { st.bindBlob(i, b) } else { st.bind(i, traceID) }
    }

    static func traceID(_ st: Statement, _ c: Int32) -> String {
        st.isBlob(c) ? hex(st.blob(c)) : st.text(c)
    }

    // MARK: Decoding

    static func entry(kind: Int64, value: [UInt8]) throws -> Entry {
        switch Kind(rawValue: kind) {
        case .string: return .string(String(decoding: value, as: UTF8.self))
        case .resource:
            let j = try JSONParser.parse(value)
            guard let svc = j.arrayValue?.first?.stringValue, let attrs = j.arrayValue?.dropFirst().first?.objectValue else {
                throw ByteDecodingError("resource entry is not [service, attributes]")
            }
            return .resource(service: svc, attributes: attrs)
        case nil: throw ByteDecodingError("unknown dictionary kind \(kind)")
        }
    }

    /// Reads one dictionary entry.
    static func loadEntry(_ id: Int64, _ c: Connection) throws -> Entry {
        let s = try c.prepare("SELECT kind, value FROM span_dict WHERE id = ?")
        s.bind(1, id)
        defer { s.reset() }
        guard try s.step() else { throw ByteDecodingError("dictionary id \(id) is missing") }
        return try entry(kind: s.int64(0), value: s.blob(1))
    }

    /// `decode`, with any failure reported as the engine error it is (a block the store wrote cannot be read).
    static func decodeBlock(_ body: [UInt8], traceID: String, start: Micros, lookup: (Int64) throws -> Entry) throws -> [Span] {
        do {
            return try decode(body, traceID: traceID, start: start, lookup: lookup)
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError.engine("span block of trace \(traceID): \(error)")
        }
    }

    /// The blocks stored for a trace, read through `c`.
    static func blocks(ofTrace t: String, _ c: Connection, lookup: (Int64) throws -> Entry) throws -> [(seq: Int64, spans: [Span])] {
        let q = try c.prepare("SELECT seq, start, body FROM span_blocks WHERE trace = ?")
        defer { q.reset() }
        bindTrace(q, 1, t)
        var out: [(seq: Int64, spans: [Span])] = []
        while try q.step() { out.append((q.int64(0), try decodeBlock(q.blob(2), traceID: t, start: q.int64(1), lookup: lookup))) }
        return out
    }

    /// Every span stored for each trace, read through `c`.
    static func spans(ofTraces traceIDs: [String], _ c: Connection, lookup: (Int64) throws -> Entry) throws -> [Span] {
        try traceIDs.flatMap { try blocks(ofTrace: $0, c, lookup: lookup).flatMap(\.spans) }
    }

    static func resourceJSON(service: String, attributes: [String: JSONValue]) -> [UInt8] {
        JSONValue.array([.string(service), .object(attributes)]).jsonBytes
    }

    /// The spans of one block. `lookup` resolves dictionary ids.
    static func decode(_ body: [UInt8], traceID: String, start base: Micros, lookup: (Int64) throws -> Entry) throws -> [Span] {
        var src = ByteSource(body)
        let version = try src.byte()
        guard version == formatVersion else { throw ByteDecodingError("unknown span block version \(version)") }
        let nStrings = try src.count()
        guard nStrings <= body.count else { throw ByteDecodingError("\(nStrings) strings in \(body.count) bytes") }
        var strings: [String] = []
        strings.reserveCapacity(nStrings)
        for _ in 0..<nStrings { strings.append(String(decoding: try src.raw(try src.count()), as: UTF8.self)) }

        func entry(_ ref: UInt64) throws -> Entry {
            if ref & 1 == 1 {
                let i = Int(ref >> 1)
                guard i < strings.count else { throw ByteDecodingError("string \(i) of \(strings.count)") }
                return .string(strings[i])
            }
            return try lookup(Int64(ref >> 1))
        }
        func string(_ ref: UInt64) throws -> String {
            guard case .string(let s) = try entry(ref) else { throw ByteDecodingError("ref \(ref) is not a string") }
            return s
        }
        func json(_ ref: UInt64) throws -> JSONValue { try JSONParser.parse(try string(ref)) }

        let n = try src.count()
        guard n <= body.count else { throw ByteDecodingError("\(n) spans in \(body.count) bytes") }
        var out: [Span] = []
        out.reserveCapacity(n)
        for _ in 0..<n {
            let flags = try src.unsigned()
            let id = try flags & 1 << 4 != 0 ? string(src.unsigned()) : hex(src.raw(8))
            var parent: String?
            if flags & 1 << 2 != 0 {
                if flags & 1 << 3 != 0 {
                    let i = try src.count()
                    guard i < out.count else { throw ByteDecodingError("parent \(i) is not an earlier span of the block") }
                    parent = out[i].spanID
                } else {
                    parent = try flags & 1 << 5 != 0 ? string(src.unsigned()) : hex(src.raw(8))
                }
            }
            let start = try base &+ Micros(truncatingIfNeeded: src.unsigned())
            let end = try start &+ src.signed()
            let name = try string(try src.unsigned())
            let service: String, resource: [String: JSONValue]
            switch try entry(try src.unsigned()) {
            case .resource(let s, let a): (service, resource) = (s, a)
            case .string(let s):
                guard case .resource(let s2, let a) = try Self.entry(kind: Kind.resource.rawValue, value: Array(s.utf8)) else {
                    throw ByteDecodingError("bad inline resource")
                }
                (service, resource) = (s2, a)
            }
            let message = try flags & 1 << 6 != 0 ? string(src.unsigned()) : nil
            let events = try flags & 1 << 7 != 0 ? json(src.unsigned()).arrayValue ?? [] : []
            let links = try flags & 1 << 8 != 0 ? json(src.unsigned()).arrayValue ?? [] : []
            let nAttrs = try src.count()
            guard nAttrs <= body.count else { throw ByteDecodingError("\(nAttrs) attributes in \(body.count) bytes") }
            var attrs: [String: JSONValue] = [:]
            attrs.reserveCapacity(nAttrs)
            for _ in 0..<nAttrs {
                let key = try string(try src.unsigned())
                let value: JSONValue
                switch try src.byte() {
                case 0: value = .null
                case 1: value = .bool(false)
                case 2: value = .bool(true)
                case 3: value = .number(Double(try src.signed()))
                case 4:
                    var bits: UInt64 = 0
                    for (k, b) in try src.raw(8).enumerated() { bits |= UInt64(b) << (8 * UInt64(k)) }
                    value = .number(Double(bitPattern: bits))
                case 5: value = .string(try string(try src.unsigned()))
                case 6: value = try json(try src.unsigned())
                case let t: throw ByteDecodingError("unknown value tag \(t)")
                }
                attrs[key] = value
            }
            let status: Span.Status
            switch flags & 3 {
            case 1: status = .ok
            case 2: status = .error
            default: status = .unset
            }
            out.append(Span(traceID: traceID, spanID: id, parentSpanID: parent, service: service, name: name, start: start, end: end,
                            status: status, statusMessage: message, attributes: attrs, resourceAttributes: resource,
                            events: events, links: links))
        }
        guard src.atEnd else { throw ByteDecodingError("\(body.count - src.pos) trailing bytes after the spans") }
        return out
    }
}

/// Dictionary entries by id, shared by the reader connections. Entries never change once committed.
final class SpanDictionaryCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [Int64: SpanBlocks.Entry] = [:]

    func entry(_ id: Int64, _ c: Connection) throws -> SpanBlocks.Entry {
        lock.lock()
        let hit = entries[id]
        lock.unlock()
        if let hit { return hit }
        let e = try SpanBlocks.loadEntry(id, c)
        lock.lock()
        entries[id] = e
        lock.unlock()
        return e
    }

    /// Every span stored for each trace, read through `c`.
    func spans(ofTraces traceIDs: [String], _ c: Connection) throws -> [Span] {
        try SpanBlocks.spans(ofTraces: traceIDs, c) { try entry($0, c) }
    }

    func decode(_ body: [UInt8], traceID: String, start: Micros, _ c: Connection) throws -> [Span] {
        try SpanBlocks.decodeBlock(body, traceID: traceID, start: start) { try entry($0, c) }
    }
}

/// Writes span blocks and the dictionary, inside a transaction its caller opened (the writer thread,
/// or a migration). New dictionary entries are remembered until the transaction commits, and forgotten
/// again if it rolls back.
final class SpanBlockWriter {
    let conn: Connection
    private var loaded = false
    private var ids: [String: Int64] = [:]
    private var resourceIDs: [[UInt8]: Int64] = [:]
    private var entries: [Int64: SpanBlocks.Entry] = [:]
    private var pending: [(Int64, String?, [UInt8]?)] = []
    private var lastResource: (service: String, attributes: [String: JSONValue], ref: UInt64)?

    init(conn: Connection) {
        self.conn = conn
        conn.onTransactionEnd { [weak self] committed in if committed { self?.committed() } else { self?.rolledBack() } }
    }

    private func load() throws {
        guard !loaded else { return }
        let s = try conn.prepare("SELECT id, kind, value FROM span_dict")
        defer { s.reset() }
        while try s.step() {
            let id = s.int64(0), value = s.blob(2)
            if s.int64(1) == SpanBlocks.Kind.resource.rawValue { resourceIDs[value] = id } else { ids[String(decoding: value, as: UTF8.self)] = id }
        }
        loaded = true
    }

    private func committed() { pending.removeAll() }

    private func rolledBack() {
        for (id, s, r) in pending {
            if let s { ids[s] = nil }
            if let r { resourceIDs[r] = nil }
            entries[id] = nil
        }
        pending.removeAll()
        lastResource = nil
    }

    private var dictionaryFull: Bool { ids.count + resourceIDs.count >= SpanBlocks.maxDictEntries }

    private func insert(kind: SpanBlocks.Kind, _ value: [UInt8]) throws -> Int64 {
        let s = try conn.prepare("INSERT INTO span_dict(kind, value) VALUES(?, ?)")
        s.bind(1, kind.rawValue).bindBlob(2, value)
        try s.run()
        return sqlite3_last_insert_rowid(conn.db)
    }

    func lookup(_ id: Int64) throws -> SpanBlocks.Entry {
        if let e = entries[id] { return e }
        let e = try SpanBlocks.loadEntry(id, conn)
        entries[id] = e
        return e
    }

    /// Encodes one block; every span has the block's trace id and starts at or after `base`.
    private struct Encoder {
        var strings: [String] = []
        var local: [String: Int] = [:]
        var out = ByteSink()
        var spans = 0

        mutating func localRef(_ s: String) -> UInt64 {
            if let i = local[s] { return UInt64(i) << 1 | 1 }
            local[s] = strings.count
            strings.append(s)
            return UInt64(strings.count - 1) << 1 | 1
        }

        func body() -> [UInt8] {
            var head = ByteSink()
            head.byte(SpanBlocks.formatVersion)
            head.unsigned(UInt64(strings.count))
            for s in strings { head.block(Array(s.utf8)) }
            head.unsigned(UInt64(spans))
            head.bytes += out.bytes
            return head.bytes
        }
    }

    private func dictRef(_ s: String, _ e: inout Encoder) throws -> UInt64 {
        if let id = ids[s] { return UInt64(id) << 1 }
        guard s.utf8.count <= SpanBlocks.maxDictString, !dictionaryFull else { return e.localRef(s) }
        let id = try insert(kind: .string, Array(s.utf8))
        ids[s] = id
        pending.append((id, s, nil))
        return UInt64(id) << 1
    }

    private func resourceRef(_ sp: Span, _ e: inout Encoder) throws -> UInt64 {
        if let l = lastResource, l.service == sp.service, l.attributes == sp.resourceAttributes { return l.ref }
        let json = SpanBlocks.resourceJSON(service: sp.service, attributes: sp.resourceAttributes)
        let ref: UInt64
        if let id = resourceIDs[json] {
            ref = UInt64(id) << 1
        } else if json.count <= SpanBlocks.maxDictResource, !dictionaryFull {
            let id = try insert(kind: .resource, json)
            resourceIDs[json] = id
            pending.append((id, nil, json))
            ref = UInt64(id) << 1
        } else {
            return e.localRef(String(decoding: json, as: UTF8.self))
        }
        lastResource = (sp.service, sp.resourceAttributes, ref)
        return ref
    }

    private func value(_ v: JSONValue, _ e: inout Encoder) {
        switch v {
        case .null: e.out.byte(0)
        case .bool(let b): e.out.byte(b ? 2 : 1)
        case .number(let d):
            if d == d.rounded(), abs(d) < 9_007_199_254_740_992, !(d == 0 && d.sign == .minus) {
                e.out.byte(3)
                e.out.signed(Int64(d))
            } else {
                e.out.byte(4)
                let bits = d.bitPattern
                for k in 0..<8 { e.out.byte(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(k)))) }
            }
        case .string(let s):
            e.out.byte(5)
            e.out.unsigned(e.localRef(s))
        case .array, .object:
            e.out.byte(6)
            e.out.unsigned(e.localRef(v.jsonString))
        }
    }

    /// The body of one block of spans sorted by start, all of `spans[0].traceID`, the first starting at `base`.
    func encode(_ spans: ArraySlice<Span>, base: Micros) throws -> [UInt8] {
        try load()
        var e = Encoder()
        var index: [String: Int] = [:]
        for (i, sp) in spans.enumerated() {
            var flags: UInt64
            switch sp.status {
            case .unset: flags = 0
            case .ok: flags = 1
            case .error: flags = 2
            }
            let id = SpanBlocks.idBytes(sp.spanID, count: 8)
            if id == nil { flags |= 1 << 4 }
            var parentBytes: [UInt8]?
            var parentIndex: Int?
            if let p = sp.parentSpanID {
                flags |= 1 << 2
                if let pi = index[p] {
                    parentIndex = pi
                    flags |= 1 << 3
                } else {
                    parentBytes = SpanBlocks.idBytes(p, count: 8)
                    if parentBytes == nil { flags |= 1 << 5 }
                }
            }
            if sp.statusMessage != nil { flags |= 1 << 6 }
            if !sp.events.isEmpty { flags |= 1 << 7 }
            if !sp.links.isEmpty { flags |= 1 << 8 }
            e.out.unsigned(flags)
            if let id { e.out.bytes += id } else { e.out.unsigned(e.localRef(sp.spanID)) }
            if let p = sp.parentSpanID {
                if let parentIndex { e.out.unsigned(UInt64(parentIndex)) } else if let parentBytes { e.out.bytes += parentBytes } else { e.out.unsigned(e.localRef(p)) }
            }
            e.out.unsigned(UInt64(bitPattern: sp.start &- base))
            e.out.signed(sp.end &- sp.start)
            e.out.unsigned(try dictRef(sp.name, &e))
            e.out.unsigned(try resourceRef(sp, &e))
            if let m = sp.statusMessage { e.out.unsigned(e.localRef(m)) }
            if !sp.events.isEmpty { e.out.unsigned(e.localRef(JSONValue.array(sp.events).jsonString)) }
            if !sp.links.isEmpty { e.out.unsigned(e.localRef(JSONValue.array(sp.links).jsonString)) }
            e.out.unsigned(UInt64(sp.attributes.count))
            for (k, v) in sp.attributes {
                e.out.unsigned(try dictRef(k, &e))
                value(v, &e)
            }
            if index[sp.spanID] == nil { index[sp.spanID] = i }
            e.spans += 1
        }
        return e.body()
    }

    /// Stores spans (with the correlation key each carries); a `(trace id, span id)` already stored,
    /// or earlier in `spans`, is a duplicate.
    func write(_ spans: [(span: Span, key: String?)]) throws -> AppendResult {
        try load()
        var order: [String] = []
        var byTrace: [String: [(span: Span, key: String?)]] = [:]
        for item in spans {
            if byTrace[item.span.traceID] == nil { order.append(item.span.traceID) }
            byTrace[item.span.traceID, default: []].append(item)
        }
        let insert = try conn.prepare("INSERT INTO span_blocks(trace, start, last, n, body) VALUES(?,?,?,?,?)")
        let upsert = try conn.prepare("""
            INSERT INTO span_keys(key, trace, last) VALUES(?,?,?)
            ON CONFLICT(key, trace) DO UPDATE SET last = max(last, excluded.last)
            """)
        var r = AppendResult()
        var seen = Set<String>()
        for t in order {
            let all = byTrace[t]!
            seen.removeAll(keepingCapacity: true)
            let blocks = try SpanBlocks.blocks(ofTrace: t, conn, lookup: lookup)
            for b in blocks { for s in b.spans { seen.insert(s.spanID) } }
            var group: [Span] = []
            // Correlation keys once per (key, trace), with the latest start of a span that carries it.
            var keyLast: [String: Micros] = [:]
            for (s, k) in all where seen.insert(s.spanID).inserted {
                group.append(s)
                if let k { keyLast[k] = max(keyLast[k] ?? s.start, s.start) }
            }
            r.duplicates += all.count - group.count
            r.accepted += group.count
            group.sort { $0.start < $1.start }
            // The block written last is the one still growing.
            let latest = blocks.filter { !$0.spans.isEmpty }.max { $0.seq < $1.seq }
            if let latest, !group.isEmpty, latest.spans.count + group.count <= SpanBlocks.maxMergedSpans {
                let merged = (latest.spans + group).sorted { $0.start < $1.start }
                if SpanBlocks.within(merged[0].start, merged[merged.count - 1].start) {
                    try rewrite(seq: latest.seq, merged)
                    group = []
                }
            }
            var lo = 0
            while lo < group.count {
                var hi = lo + 1
                while hi < group.count, hi - lo < SpanBlocks.maxSpans, SpanBlocks.within(group[lo].start, group[hi].start) { hi += 1 }
                let base = group[lo].start
                insert.reset()
                SpanBlocks.bindTrace(insert, 1, t)
                insert.bind(2, base).bind(3, group[hi - 1].start).bind(4, hi - lo).bindBlob(5, try encode(group[lo..<hi], base: base))
                try insert.run()
                lo = hi
            }
            for (k, last) in keyLast {
                upsert.reset()
                upsert.bind(1, k)
                SpanBlocks.bindTrace(upsert, 2, t)
                upsert.bind(3, last)
                try upsert.run()
            }
        }
        return r
    }

    /// Replaces a block's spans (sorted by start, not empty).
    private func rewrite(seq: Int64, _ spans: [Span]) throws {
        let update = try conn.prepare("UPDATE span_blocks SET start = ?, last = ?, n = ?, body = ? WHERE seq = ?")
        update.bind(1, spans[0].start).bind(2, spans[spans.count - 1].start).bind(3, spans.count)
        update.bindBlob(4, try encode(spans[...], base: spans[0].start)).bind(5, seq)
        try update.run()
    }

    /// Deletes the spans that start before `cutoff`; blocks that straddle it are rewritten without them.
    func deleteBefore(_ cutoff: Micros) throws {
        try conn.prepare("DELETE FROM span_blocks WHERE start < ?1 AND last < ?1").bind(1, cutoff).run()
        let s = try conn.prepare("SELECT seq, trace, start, body FROM span_blocks WHERE start < ?")
        s.bind(1, cutoff)
        var straddling: [(Int64, String, [Span])] = []
        while try s.step() {
            let t = SpanBlocks.traceID(s, 1)
            do {
                straddling.append((s.int64(0), t, try SpanBlocks.decodeBlock(s.blob(3), traceID: t, start: s.int64(2), lookup: lookup)))
            } catch {
                s.reset()
                throw error
            }
        }
        s.reset()
        for (seq, _, spans) in straddling {
            let kept = spans.filter { $0.start >= cutoff }.sorted { $0.start < $1.start }
            if !kept.isEmpty { try rewrite(seq: seq, kept) }
        }
        try conn.prepare("DELETE FROM span_keys WHERE last < ?").bind(1, cutoff).run()
    }
}

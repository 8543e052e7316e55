import WaybillModel

/// Compact span storage (schema version 6): the block format. Pure: no SQLite here.
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
/// are coded by a dictionary (`SpanDictionary`), so a repeated resource costs one or two bytes a span.
/// Values are coded in the block's own string table, so an order id repeated on every span of a trace
/// is stored once per block.
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

    /// What a ref names: a string, or a resource.
    enum Entry: Sendable {
        case string(String)
        case resource(service: String, attributes: [String: JSONValue])
    }

    /// How the dictionary codes a resource: by its id, or (too large, or the dictionary full) as its JSON
    /// in the block's string table.
    enum ResourceCode {
        case id(Int64)
        case inBlock(json: [UInt8])
    }

    // MARK: Ids and resources

    /// The bytes of `count` bytes written as lowercase hex, or nil when `s` is anything else (stored as text).
    static func idBytes(_ s: String, count: Int) -> [UInt8]? {
        guard s.utf8.count == count * 2 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(count)
        return LowerHex.decode(s.utf8, into: &out) ? out : nil
    }

    static func hex<C: Collection<UInt8>>(_ b: C) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(b.count * 2)
        LowerHex.encode(b, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// A resource as it is coded: `[service, attributes]` as JSON (object keys sorted, so equal resources have equal bytes).
    static func resourceJSON(service: String, attributes: [String: JSONValue]) -> [UInt8] {
        JSONValue.array([.string(service), .object(attributes)]).jsonBytes
    }

    /// The resource coded by `resourceJSON`.
    static func resource(fromJSON json: [UInt8]) throws -> (service: String, attributes: [String: JSONValue]) {
        let j = try JSONParser.parse(json)
        guard let svc = j.arrayValue?.first?.stringValue, let attrs = j.arrayValue?.dropFirst().first?.objectValue else {
            throw ByteDecodingError("resource entry is not [service, attributes]")
        }
        return (svc, attrs)
    }

    // MARK: Decoding

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
            // A resource kept in the block is its JSON in the string table.
            case .string(let json): (service, resource) = try Self.resource(fromJSON: Array(json.utf8))
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

    // MARK: Encoding

    /// The body of one block of spans sorted by start, all of one trace, the first starting at `base`.
    /// Names, attribute keys and resources are coded by `dictionary`, which may enter new ones.
    static func encode<D: SpanBlockDictionary>(_ spans: ArraySlice<Span>, base: Micros, dictionary: D) throws -> [UInt8] {
        var e = Encoder()
        var index: [String: Int] = [:]
        for (i, sp) in spans.enumerated() {
            var flags: UInt64
            switch sp.status {
            case .unset: flags = 0
            case .ok: flags = 1
            case .error: flags = 2
            }
            let id = idBytes(sp.spanID, count: 8)
            if id == nil { flags |= 1 << 4 }
            var parentBytes: [UInt8]?
            var parentIndex: Int?
            if let p = sp.parentSpanID {
                flags |= 1 << 2
                if let pi = index[p] {
                    parentIndex = pi
                    flags |= 1 << 3
                } else {
                    parentBytes = idBytes(p, count: 8)
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
            e.out.unsigned(try e.ref(sp.name, dictionary))
            e.out.unsigned(try e.resourceRef(sp, dictionary))
            if let m = sp.statusMessage { e.out.unsigned(e.localRef(m)) }
            if !sp.events.isEmpty { e.out.unsigned(e.localRef(JSONValue.array(sp.events).jsonString)) }
            if !sp.links.isEmpty { e.out.unsigned(e.localRef(JSONValue.array(sp.links).jsonString)) }
            e.out.unsigned(UInt64(sp.attributes.count))
            for (k, v) in sp.attributes {
                e.out.unsigned(try e.ref(k, dictionary))
                e.value(v)
            }
            if index[sp.spanID] == nil { index[sp.spanID] = i }
            e.spans += 1
        }
        return e.body()
    }

    /// The block being encoded: its string table, and the spans written after it.
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

        mutating func ref<D: SpanBlockDictionary>(_ s: String, _ dictionary: D) throws -> UInt64 {
            if let id = try dictionary.id(ofString: s) { return UInt64(id) << 1 }
            return localRef(s)
        }

        mutating func resourceRef<D: SpanBlockDictionary>(_ sp: Span, _ dictionary: D) throws -> UInt64 {
            switch try dictionary.code(service: sp.service, attributes: sp.resourceAttributes) {
            case .id(let id): return UInt64(id) << 1
            case .inBlock(let json): return localRef(String(decoding: json, as: UTF8.self))
            }
        }

        mutating func value(_ v: JSONValue) {
            switch v {
            case .null: out.byte(0)
            case .bool(let b): out.byte(b ? 2 : 1)
            case .number(let d):
                if d == d.rounded(), abs(d) < 9_007_199_254_740_992, !(d == 0 && d.sign == .minus) {
                    out.byte(3)
                    out.signed(Int64(d))
                } else {
                    out.byte(4)
                    let bits = d.bitPattern
                    for k in 0..<8 { out.byte(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(k)))) }
                }
            case .string(let s):
                out.byte(5)
                out.unsigned(localRef(s))
            case .array, .object:
                out.byte(6)
                out.unsigned(localRef(v.jsonString))
            }
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
}

/// What encoding asks of the dictionary (`SpanDictionary`): the id of a name, attribute key or
/// resource, entering it when the dictionary takes it.
protocol SpanBlockDictionary: AnyObject {
    /// The id of `s`, or nil to keep it in the block.
    func id(ofString s: String) throws -> Int64?
    func code(service: String, attributes: [String: JSONValue]) throws -> SpanBlocks.ResourceCode
}

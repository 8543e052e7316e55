import CSQLite
import Foundation
import WaybillModel
import WaybillStore

/// Compact event storage (schema version 10): events in compressed blocks. Pure codec here; the rows
/// are in `EventBlockTable`.
///
/// One `event_blocks` row holds events that arrived together (in one append, in arrival order) and
/// whose times lie in the same hour (`bucketWidth`), as many as compress to about a third of a page
/// (`targetBytes`). Interleaved arrival puts one
/// or two events of an order in each write, so blocks of one order would hold one event each; blocks
/// in arrival order compress several times better. `event_keys` holds one row per subject and block,
/// so a trace reads the blocks that hold its keys (the subject itself is the key, not a hash of it:
/// orders are active for days, so the keys written together are near each other in the index and a
/// commit dirties few of its pages), and a time-range read looks at blocks whose first time is at most an hour before the range.
/// Blocks are compressed on the appending caller's thread, before the writer knows which events are
/// duplicates; the writer stores a block with duplicates as it is and lists their indexes in `skip`
/// (readers leave them out), so it never compresses on its one thread. The first and last time (of
/// the stored events) and their count are columns; the body is:
///
/// ```
/// body    = version(1) codec(1) [dict(varint) size(varint)] payload      codec 0: payload as is
///                                                                         codec 1: raw deflate of it
/// payload (version 4) = n(varint) base(zigzag) { len(varint) text }*n { kind(1) }*n
///           { subject(ref) len(varint) id  timeDelta(zigzag, from base) source(ref) type(ref) trace(ref + 1, 0 none) }*  one per kind 1
///           { shape(1) [offset minutes(zigzag)] timeDelta(zigzag, from base) }*  one per kind with 2
///           { version(1) traceID(16) parentID(8) flags(1) }*                    one per kind with 4
///           nStrings(varint) { len(varint) utf8 }*
/// payload (version 3) = n(varint) base(zigzag) { len(varint) raw }*n { kind(1) }*n
///           { subject(ref) len(varint) id  timeDelta(zigzag, from base) source(ref) type(ref) trace(ref + 1, 0 none) }*  one per kind 1
///           nStrings(varint) { len(varint) utf8 }*
/// payload (version 2) = n(varint) base(zigzag) { len(varint) raw }*n { subject(ref) kind(1) }*n
///           { len(varint) id  timeDelta(zigzag, from base) source(ref) type(ref) trace(ref + 1, 0 none) }*  one per kind 1
///           nStrings(varint) { len(varint) utf8 }*
/// payload (version 1) = n(varint) base(zigzag) { len(varint) raw }*n { len(varint) id }*n
///           { subject(ref) timeDelta(zigzag, from base) source(ref) type(ref) trace(ref + 1, 0 none) }*n
///           nStrings(varint) { len(varint) utf8 }*
/// ```
///
/// `raw` is the event exactly as it was sent, so a trace returns it byte for byte. Subjects, sources,
/// types and trace ids are in the block's string table. Version 2 keeps an event's id, time, source,
/// type and trace id only when its JSON does not give them back (`kind` 1): for kind 0 they are read
/// from the JSON (`EventFields.scan`, checked when the block is written), since those columns cost a
/// fifth of a compressed block (the times and ids hardly compress). Version 3 reads a kind-0 event's
/// subject from its JSON too (the same check covers it): the subjects' string table and references
/// cost about 5 bytes an event after deflate. A read of one subject's events (a trace) scans only the
/// events whose JSON holds the subject's bytes. Version 4 also cuts the values of `time` and
/// `traceparent` out of a kind-0 event's text (kind 0 + 2 for the time, + 4 for the traceparent) and keeps
/// them in binary (`EventTextCuts`): the time as a delta and the shape of its text (fraction digits, `Z` or
/// offset), the traceparent as 26 bytes. A value is cut only when the text made back from the binary is
/// the same bytes; `text` then holds `"time":""` where the value was, and a read puts it back. The
/// times' digits and the traceparents' hex took about a quarter of a compressed block. Blocks of
/// versions 1 to 3 stay readable.
/// Bodies are compressed with raw deflate and a preset
/// dictionary (`event_dict`, learned from the store's first 32 KiB of events): the field names and
/// common values of a single short event are then found in the dictionary, so even a block of one
/// event compresses to a fraction of its JSON.
enum EventBlocks {
    /// The version new blocks are written in; 1 to 4 are read. `WAYBILL_BLOCK_FORMAT=3` writes version 3,
    /// for A/B benchmarks.
    static let formatVersion: UInt8 = ProcessInfo.processInfo.environment["WAYBILL_BLOCK_FORMAT"] == "3" ? 3 : 4
    /// Events of one block lie in one bucket of this width.
    static let bucketWidth: Micros = 3_600_000_000
    /// Most events in a block cut by count (`group`: the conversion of version 9 stores). Appends are cut
    /// by size instead (`prepare`).
    static let maxEvents = 32
    /// Most events in a block cut by size (`prepare`), whatever their size.
    static let maxEventsBySize = 256
    /// Blocks of an append are cut so that each compresses to about `targetBytes(pageSize:)`: a third of
    /// a page less the row's own bytes, so three rows fill a page. Blocks of a fixed 32 events
    /// (1.0 to 2.1 KB compressed) packed 4.8 to a page of 8 KiB and left 9.6% of it unused; rows of
    /// about 2.6 KB leave a few percent, and a larger block compresses better. A page of 4 KiB takes one
    /// row of about 4 KB. `WAYBILL_BLOCK_BYTES=N` sets another target, for A/B benchmarks.
    static func targetBytes(pageSize: Int) -> Int {
        if let n = ProcessInfo.processInfo.environment["WAYBILL_BLOCK_BYTES"].flatMap(Int.init), n >= 256 { return n }
        let usable = pageSize - 8
        let rows = max(1, (usable + 1_350) / 2_700)
        // Per row: a 2-byte cell pointer, its header (~7 bytes) and its tmin, tmax and n (~17 bytes);
        // 4% below the size that just fits, since a block's size is predicted, not known, before deflate.
        return (usable / rows - 31) * 96 / 100
    }
    /// Deflate of new blocks tuned for speed (`Zlib.Tuning.eventBlocks`); `WAYBILL_BLOCK_DEFLATE=default`
    /// keeps level 6's own parameters, for A/B benchmarks. Blocks read the same either way.
    static let tuneDeflate = ProcessInfo.processInfo.environment["WAYBILL_BLOCK_DEFLATE"] != "default"
    /// Size of a learned dictionary (zlib uses at most 32 KiB).
    static let dictionarySize = 32 * 1024


    static func bucket(_ t: Micros) -> Micros {
        let q = t / bucketWidth
        return (t % bucketWidth < 0 ? q - 1 : q) * bucketWidth
    }

    /// The earliest `tmin` of a block that may hold an event at `t` or later.
    static func earliestBlockStart(for t: Micros) -> Micros {
        let (d, overflow) = t.subtractingReportingOverflow(bucketWidth)
        return overflow ? Micros.min : d
    }

    /// Indexes of `events` grouped into blocks: by bucket, in arrival order, at most `maxEvents` a block
    /// (so the stored order of a subject's events is their arrival order).
    static func group(_ events: [CloudEvent]) -> [[Int]] {
        var open: [Micros: Int] = [:]
        var out: [[Int]] = []
        for i in events.indices {
            let b = bucket(events[i].time)
            if let k = open[b], out[k].count < maxEvents {
                out[k].append(i)
            } else {
                open[b] = out.count
                out.append([i])
            }
        }
        return out
    }

    /// The uncompressed payload of a block's events (in `version`, 3 unless a test asks for 2); `base` is the least of their times. The
    /// events' JSON comes first, one after the other, so that deflate sees the text it compresses best
    /// as one run; the columns follow.
    static func payload<C: Collection>(_ events: C, base: Micros, version: UInt8 = formatVersion) -> [UInt8] where C.Element == CloudEvent {
        let all = Array(events)
        return all.withUnsafeBufferPointer { payload(all.indices, of: $0, base: base, version: version) }
    }

    /// The payload of the events at `indexes` of `events`, read in place: an event is not copied (a copy of
    /// a `CloudEvent` retains and releases each of its strings, arrays and its data).
    static func payload<I: Collection>(_ indexes: I, of events: UnsafeBufferPointer<CloudEvent>, base: Micros,
                                       version: UInt8 = formatVersion) -> [UInt8]
    where I.Element == Int {
        var strings: [String] = []
        var index: [String: Int] = [:]
        func ref(_ s: String) -> UInt64 {
            if let i = index[s] { return UInt64(i) }
            index[s] = strings.count
            strings.append(s)
            return UInt64(strings.count - 1)
        }
        var rawBytes = 0
        for i in indexes { rawBytes += events[i].raw.count + 3 }
        var out = ByteSink()
        out.bytes.reserveCapacity(rawBytes + 16 * indexes.count + 16)
        out.unsigned(UInt64(indexes.count))
        out.signed(base)
        // Each event's kind: 1 = attributes as columns; else read from the JSON, with (format 4) the
        // `time` value cut out (+2) and the `traceparent` value cut out (+4).
        var kinds: [UInt8] = []
        kinds.reserveCapacity(indexes.count)
        var times = ByteSink(), traces = ByteSink()
        for i in indexes {
            let raw = events[i].raw
            guard version >= 4 else {
                out.block(raw)
                kinds.append(EventFields.scan(raw) == EventFields(events[i]) ? 0 : 1)
                continue
            }
            let cut: (kind: UInt8, text: [UInt8])? = raw.withUnsafeBufferPointer { b in
                guard let m = EventFields.members(b), let f = EventFields.scan(b, m), f == EventFields(events[i]) else { return nil }
                var kind: UInt8 = 0
                var gaps: [Range<Int>] = []
                if let r = m.time, let shape = EventTextCuts.timeShape(UnsafeBufferPointer(rebasing: b[r]), time: f.time) {
                    kind |= 2
                    shape.write(&times)
                    times.signed(f.time &- base)
                    gaps.append(r)
                }
                if let r = m.traceparent, let t = EventTextCuts.traceparent(UnsafeBufferPointer(rebasing: b[r])) {
                    kind |= 4
                    traces.bytes += t
                    gaps.append(r)
                }
                guard !gaps.isEmpty else { return (0, raw) }
                gaps.sort { $0.lowerBound < $1.lowerBound }
                var text: [UInt8] = []
                text.reserveCapacity(b.count)
                var at = 0
                for g in gaps {
                    text += UnsafeBufferPointer(rebasing: b[at..<g.lowerBound])
                    at = g.upperBound
                }
                text += UnsafeBufferPointer(rebasing: b[at...])
                return (kind, text)
            }
            out.block(cut?.text ?? raw)
            kinds.append(cut?.kind ?? 1)
        }
        var explicit = ByteSink()
        for (k, i) in indexes.enumerated() {
            if version == 2 { out.unsigned(ref(events[i].subject)) }
            out.byte(kinds[k])
            if kinds[k] != 1 { continue }
            if version != 2 { explicit.unsigned(ref(events[i].subject)) }
            explicit.block(Array(events[i].id.utf8))
            explicit.signed(events[i].time &- base)
            explicit.unsigned(ref(events[i].source))
            explicit.unsigned(ref(events[i].type))
            explicit.unsigned(events[i].traceID.map { ref($0) + 1 } ?? 0)
        }
        out.bytes += explicit.bytes
        out.bytes += times.bytes
        out.bytes += traces.bytes
        out.unsigned(UInt64(strings.count))
        for s in strings { out.block(Array(s.utf8)) }
        return out.bytes
    }

    /// A stored body: the payload compressed with the dictionary when that is smaller.
    static func body(payload: [UInt8], dictionary: EventDictionary.Entry?) -> [UInt8] {
        let z = Zlib.deflate(payload, dictionary: dictionary?.bytes, level: 6, tuning: tuneDeflate ? .eventBlocks : nil)
        var out = ByteSink()
        out.byte(formatVersion)
        if z.count + 8 < payload.count {
            out.byte(1)
            out.unsigned(UInt64(dictionary?.id ?? 0))
            out.unsigned(UInt64(payload.count))
            out.bytes += z
        } else {
            out.byte(0)
            out.bytes += payload
        }
        return out.bytes
    }

    /// Encodes events as one block: (tmin, tmax, body).
    static func encode<C: Collection>(_ events: C, dictionary: EventDictionary.Entry?) -> (tmin: Micros, tmax: Micros, body: [UInt8])
    where C.Element == CloudEvent {
        let all = Array(events)
        return all.withUnsafeBufferPointer { encode(all.indices, of: $0, dictionary: dictionary) }
    }

    /// Encodes the events at `indexes` of `events` (read in place) as one block.
    static func encode<I: Collection>(_ indexes: I, of events: UnsafeBufferPointer<CloudEvent>, dictionary: EventDictionary.Entry?)
        -> (tmin: Micros, tmax: Micros, body: [UInt8]) where I.Element == Int {
        var tmin = Micros.max, tmax = Micros.min
        for i in indexes {
            tmin = min(tmin, events[i].time)
            tmax = max(tmax, events[i].time)
        }
        if indexes.isEmpty { (tmin, tmax) = (0, 0) }
        return (tmin, tmax, body(payload: payload(indexes, of: events, base: tmin), dictionary: dictionary))
    }

    /// A body's format version and payload, inflated.
    static func payload(of body: [UInt8], dictionary: (Int64) throws -> [UInt8]) throws -> (version: UInt8, bytes: [UInt8]) {
        var head = ByteSource(body)
        let version = try head.byte()
        guard (1...4).contains(version) else { throw ByteDecodingError("event block: unknown format version \(version)") }
        switch try head.byte() {
        case 0:
            return (version, Array(body[head.pos...]))
        case 1:
            let dict = try head.count()
            let size = try head.count()
            guard size <= 1 << 30 else { throw ByteDecodingError("event block: size \(size)") }
            return (version, try Zlib.inflate(body[head.pos...], size: size, dictionary: dict == 0 ? nil : try dictionary(Int64(dict))))
        default:
            throw ByteDecodingError("event block: unknown codec")
        }
    }

    /// A payload read into its parts: the raw ranges, each event's subject, and the attributes stored as
    /// columns (nil for an event of version 2 whose attributes are read from its JSON).
    struct Parsed {
        struct Columns {
            var id: Range<Int>
            var time: Micros
            var source: Int
            var type: Int
            var trace: Int
        }

        let p: [UInt8]
        var raws: [Range<Int>] = []
        /// Each event's subject in `strings`, or -1: read from its JSON (version 3, kind 0).
        var subjects: [Int] = []
        var columns: [Columns?] = []
        var strings: [String] = []
        /// Version 4: each event's cut `time` (its value and the shape of its text) and cut `traceparent`
        /// (where its 26 bytes start in `p`); empty when the block has none.
        var cutTimes: [(time: Micros, shape: EventTextCuts.TimeShape)?] = []
        var cutTraces: [Int?] = []

        init(_ p: [UInt8], version: UInt8) throws {
            self.p = p
            var s = ByteSource(p)
            let n = try s.count()
            let base = try s.signed()
            guard n <= p.count else { throw ByteDecodingError("event block: \(n) events in \(p.count) bytes") }
            func range() throws -> Range<Int> {
                let len = try s.count()
                let start = s.pos
                _ = try s.raw(len)
                return start..<(start + len)
            }
            for _ in 0..<n { raws.append(try range()) }
            func attributes(id: Range<Int>) throws -> Columns {
                Columns(id: id, time: base &+ (try s.signed()), source: try s.count(), type: try s.count(), trace: try s.count())
            }
            if version == 1 {
                var ids: [Range<Int>] = []
                for _ in 0..<n { ids.append(try range()) }
                for i in 0..<n {
                    subjects.append(try s.count())
                    columns.append(try attributes(id: ids[i]))
                }
            } else {
                var kinds: [UInt8] = []
                for _ in 0..<n {
                    if version == 2 { subjects.append(try s.count()) }
                    kinds.append(try s.byte())
                }
                for k in kinds {
                    switch k {
                    case 0:
                        columns.append(nil)
                        if version != 2 { subjects.append(-1) }
                    case 1:
                        if version != 2 { subjects.append(try s.count()) }
                        columns.append(try attributes(id: try range()))
                    case 2, 4, 6:
                        guard version >= 4 else { throw ByteDecodingError("event block: kind \(k)") }
                        columns.append(nil)
                        subjects.append(-1)
                    default: throw ByteDecodingError("event block: kind \(k)")
                    }
                }
                if version >= 4, kinds.contains(where: { $0 & 6 != 0 }) {
                    for k in kinds {
                        guard k & 2 != 0 else { cutTimes.append(nil); continue }
                        let shape = try EventTextCuts.TimeShape.read(&s)
                        cutTimes.append((base &+ (try s.signed()), shape))
                    }
                    for k in kinds {
                        guard k & 4 != 0 else { cutTraces.append(nil); continue }
                        cutTraces.append(s.pos)
                        _ = try s.raw(EventTextCuts.traceparentBytes)
                    }
                }
            }
            let nStrings = try s.count()
            guard nStrings <= p.count else { throw ByteDecodingError("event block: \(nStrings) strings") }
            for _ in 0..<nStrings { strings.append(String(decoding: try s.raw(try s.count()), as: UTF8.self)) }
            for r in subjects where r >= strings.count || (r < 0 && version < 3) { throw ByteDecodingError("event block: string \(r) of \(strings.count)") }
            for c in columns {
                guard let c else { continue }
                if c.source >= strings.count || c.type >= strings.count || c.trace > strings.count {
                    throw ByteDecodingError("event block: a string reference out of \(strings.count)")
                }
            }
        }

        /// Whether event `i` had a value cut out of its JSON text (version 4).
        func isCut(_ i: Int) -> Bool {
            (cutTimes.isEmpty ? false : cutTimes[i] != nil) || (cutTraces.isEmpty ? false : cutTraces[i] != nil)
        }

        /// Event `i`'s JSON text as it was sent: with the values cut out (version 4) put back.
        func raw(_ i: Int) throws -> [UInt8] {
            guard isCut(i) else { return Array(p[raws[i]]) }
            let text = p[raws[i]]
            guard let m = EventFields.members(text) else { throw ByteDecodingError("event block: event \(i) has no readable members") }
            var puts: [(at: Int, bytes: [UInt8])] = []
            if let t = cutTimes[i] {
                guard let r = m.time, r.isEmpty, let made = EventTextCuts.format(t.time, t.shape) else {
                    throw ByteDecodingError("event block: event \(i)'s time cannot be put back")
                }
                puts.append((text.startIndex + r.lowerBound, made))
            }
            if let at = cutTraces[i] {
                guard let r = m.traceparent, r.isEmpty else { throw ByteDecodingError("event block: event \(i)'s traceparent cannot be put back") }
                puts.append((text.startIndex + r.lowerBound, EventTextCuts.traceparentText(p[at..<(at + EventTextCuts.traceparentBytes)])))
            }
            puts.sort { $0.at < $1.at }
            var out: [UInt8] = []
            out.reserveCapacity(text.count + 80)
            var from = text.startIndex
            for x in puts {
                out += p[from..<x.at]
                out += x.bytes
                from = x.at
            }
            out += p[from..<text.endIndex]
            return out
        }

        /// The attributes of event `i`, from its columns or its JSON (`raw`: its text, when already made).
        func fields(_ i: Int, raw: [UInt8]? = nil) throws -> EventFields {
            if let c = columns[i] {
                return EventFields(id: String(decoding: p[c.id], as: UTF8.self), source: strings[c.source], type: strings[c.type],
                                   subject: strings[subjects[i]], time: c.time, traceID: c.trace == 0 ? nil : strings[c.trace - 1])
            }
            let scanned: EventFields?
            if let raw { scanned = EventFields.scan(raw) } else if isCut(i) { scanned = EventFields.scan(try self.raw(i)) } else { scanned = EventFields.scan(p[raws[i]]) }
            guard var f = scanned else { throw ByteDecodingError("event block: event \(i) has no readable attributes") }
            if subjects[i] >= 0 { f.subject = strings[subjects[i]] }
            return f
        }

        /// Whether `needle` (not empty) occurs in `hay`.
        static func contains(_ hay: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
            hay.withUnsafeBufferPointer { h in
                needle.withUnsafeBufferPointer { n in
                    guard n.count <= h.count, let first = n.first, let hb = h.baseAddress, let nb = n.baseAddress else { return false }
                    // memchr finds each candidate first byte (a block's texts are ~15 KB a trace scans).
                    var i = 0
                    let last = h.count - n.count
                    while i <= last {
                        guard let at = memchr(hb + i, Int32(first), last - i + 1) else { return false }
                        i = UnsafeRawPointer(hb).distance(to: UnsafeRawPointer(at))
                        if memcmp(hb + i, nb, n.count) == 0 { return true }
                        i += 1
                    }
                    return false
                }
            }
        }

        /// Whether event `i`'s subject is one of `wanted`; for a subject read from the JSON, only an event
        /// whose JSON holds one of `needles` (the subjects' bytes; nil: scan every event) is scanned.
        func subject(_ i: Int, in wanted: Set<String>, needles: [[UInt8]]?) throws -> Bool {
            if subjects[i] >= 0 { return wanted.contains(strings[subjects[i]]) }
            let r = raws[i]
            let holds = needles.map { needles in needles.contains { Self.contains(p[r], $0) } } ?? true
            guard holds else { return false }
            // The subject as `scan` reads it (version 4 may have cut the time out of the text, not the subject).
            guard let m = EventFields.members(p[r]), m.id != nil, m.source != nil, m.type != nil, m.time != nil, let subject = m.subject else {
                throw ByteDecodingError("event block: event \(i) has no readable subject")
            }
            return wanted.contains(String(decoding: p[(r.lowerBound + subject.lowerBound)..<(r.lowerBound + subject.upperBound)], as: UTF8.self))
        }
    }

    /// Most subjects `decode(only:)` looks for as bytes before it reads an event's subject.
    static let maxNeedles = 8

    /// The events of a block (of the subjects `only` lets through), `data` parsed from `raw` as the
    /// collectors do.
    static func decode(_ body: [UInt8], hidden: Set<Int> = [], only: Set<String>? = nil,
                       dictionary: (Int64) throws -> [UInt8]) throws -> [(index: Int, event: CloudEvent)] {
        let (version, p) = try payload(of: body, dictionary: dictionary)
        let b = try Parsed(p, version: version)
        // An empty subject has no bytes to look for: then every event is scanned. So are they for many
        // subjects (a batch read of a window's orders): a byte search per subject and event would cost
        // more than reading each event's subject (measured: 2,000 subjects made it 4.6x slower than
        // reading the orders one by one).
        let needles = only.flatMap { $0.count > Self.maxNeedles || $0.contains("") ? nil : $0.map { Array($0.utf8) } }
        var out: [(index: Int, event: CloudEvent)] = []
        for i in b.raws.indices where !hidden.contains(i) {
            // A subject kept in the JSON and no bytes to look for: the event's fields are read once, and
            // their subject decides.
            let fromFields = only != nil && needles == nil && b.subjects[i] < 0
            if let only, !fromFields, !(try b.subject(i, in: only, needles: needles)) { continue }
            let raw = try b.raw(i)
            let f = try b.fields(i, raw: raw)
            if fromFields, let only, !only.contains(f.subject) { continue }
            let data = (try? JSONParser.parse(raw))?["data"]
            out.append((i, CloudEvent(id: f.id, source: f.source, type: f.type, time: f.time, subject: f.subject, traceID: f.traceID,
                                      data: data.flatMap { $0.isNull ? nil : $0 }, raw: raw)))
        }
        return out
    }

    /// The `(source, id)` pairs of a block without parsing the events' data (idempotency checks).
    static func keys(_ body: [UInt8], hidden: Set<Int> = [], dictionary: (Int64) throws -> [UInt8]) throws -> [(source: String, id: String)] {
        let (version, p) = try payload(of: body, dictionary: dictionary)
        let b = try Parsed(p, version: version)
        return try b.raws.indices.filter { !hidden.contains($0) }.map { i in
            if let c = b.columns[i] { return (b.strings[c.source], String(decoding: p[c.id], as: UTF8.self)) }
            let f = try b.fields(i)
            return (f.source, f.id)
        }
    }

    /// The `skip` column: the indexes of a block's events that are not stored (duplicates found by the
    /// writer in a block compressed before it knew), as varints; nil when none.
    static func hiddenColumn(_ indexes: [Int]) -> [UInt8]? {
        guard !indexes.isEmpty else { return nil }
        var out = ByteSink()
        for i in indexes { out.unsigned(UInt64(i)) }
        return out.bytes
    }

    static func hidden(_ column: [UInt8]) throws -> Set<Int> {
        var s = ByteSource(column)
        var out = Set<Int>()
        while !s.atEnd { out.insert(try s.count()) }
        return out
    }

    /// The event types a dictionary holds (the values of its `"type"` members; a `type` member
    /// inside `data` counts too, which at worst delays learning a new one).
    static func types(inDictionary bytes: [UInt8]) -> Set<String> {
        let key = Array(#""type""#.utf8)
        var out = Set<String>()
        var i = 0
        func skipSpace() { while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 { i += 1 } }
        while i + key.count <= bytes.count {
            guard bytes[i] == 0x22, bytes[i..<(i + key.count)].elementsEqual(key) else { i += 1; continue }
            i += key.count
            skipSpace()
            guard i < bytes.count, bytes[i] == 0x3A else { continue }
            i += 1
            skipSpace()
            guard i < bytes.count, bytes[i] == 0x22 else { continue }
            i += 1
            let start = i
            while i < bytes.count, bytes[i] != 0x22, bytes[i] != 0x5C { i += 1 }
            if i < bytes.count, bytes[i] == 0x22 { out.insert(String(decoding: bytes[start..<i], as: UTF8.self)) }
        }
        return out
    }

    /// A dictionary sample: events of every type first (a few each), then any, up to `dictionarySize`
    /// bytes; nil when the events hold less than that (too little to learn from).
    static func dictionarySample(_ events: [CloudEvent]) -> [UInt8]? {
        guard events.reduce(0, { $0 + $1.raw.count }) >= dictionarySize else { return nil }
        var perType: [String: Int] = [:]
        var picked = Set<Int>()
        var parts: [[UInt8]] = []
        var size = 0
        for round in 1...3 {
            for (i, e) in events.enumerated() where size < dictionarySize && perType[e.type, default: 0] < round && !picked.contains(i) {
                perType[e.type, default: 0] += 1
                picked.insert(i)
                parts.append(e.raw + [0x0A])
                size += e.raw.count + 1
            }
        }
        for (i, e) in events.enumerated() where size < dictionarySize && !picked.contains(i) {
            parts.append(e.raw + [0x0A])
            size += e.raw.count + 1
        }
        // zlib finds matches nearer the end more cheaply: the most typical (first of each type) go last.
        return Array(parts.reversed().joined().suffix(dictionarySize))
    }
}

/// One block of an append, encoded on the caller's thread: which of the append's events it holds.
struct PreparedBlock: Sendable {
    let indexes: [Int]
    let subjects: [String]
    let tmin: Micros
    let tmax: Micros
    let body: [UInt8]
}

extension EventBlocks {
    /// The distinct subjects of events, in order of first appearance.
    static func subjects<C: Sequence>(_ events: C) -> [String] where C.Element == CloudEvent {
        distinct(events.lazy.map(\.subject))
    }

    /// The distinct strings of `subjects`, in order of first appearance.
    static func distinct<S: Sequence>(_ subjects: S) -> [String] where S.Element == String {
        var seen = Set<String>()
        return subjects.filter { seen.insert($0).inserted }
    }

    /// The blocks of an append, compressed with the dictionary current for writing (on the caller's thread).
    /// `hashes` are the events' `DedupIndex.hash`; events marked in `skip` are left out of the blocks.
    static func prepare(_ events: [CloudEvent], hashes: [Int64], skip: [Bool], dictionary: EventDictionary) -> [PreparedBlock] {
        let (entry, target, ratio) = dictionary.forPreparing
        let (blocks, learned) = prepare(events, hashes: hashes, skip: skip, dictionary: entry, targetBytes: target, ratio: ratio)
        if let learned { dictionary.observe(ratio: learned) }
        return blocks
    }

    /// The blocks of an append: its events by hour bucket (buckets in order of their first event), each
    /// bucket's in arrival order, cut so that a block compresses to about `targetBytes`. A block's
    /// compressed size is predicted from its events' JSON bytes times `ratio` (compressed to raw bytes
    /// of the block before; `nil`: 0.2), so each is compressed once. An event whose `(source, id)` is
    /// already earlier in the append is in no block: it cannot be stored (the writer finds it a
    /// duplicate of the earlier one), and a resend of interleaved arrival usually comes in the same
    /// append as its first copy (98.7% of them on `bench/gen_interleaved.py` data), where it would
    /// stay in the body as a hidden event. So is an event marked in `skip`: one whose `(source, id)` came
    /// in an earlier append (`RecentEventKeys`; a resend in a later request, 2.5% of the events of
    /// interleaved arrival posted over HTTP); the writer stores it in a block of its own should it be
    /// new after all. Returns the ratio of the last block compressed.
    static func prepare(_ events: [CloudEvent], hashes: [Int64]? = nil, skip: [Bool]? = nil, dictionary: EventDictionary.Entry?,
                        targetBytes: Int, ratio: Double? = nil) -> (blocks: [PreparedBlock], ratio: Double?) {
        events.withUnsafeBufferPointer { all in
            var first: [Int64: Int] = [:]
            first.reserveCapacity(all.count)
            var buckets: [Micros: Int] = [:]
            var lists: [[Int]] = []
            for i in all.indices {
                if let skip, skip[i] { continue }
                let h = hashes?[i] ?? DedupIndex.hash(source: all[i].source, id: all[i].id)
                if let k = first[h] {
                    if all[k].id == all[i].id && all[k].source == all[i].source { continue }
                } else {
                    first[h] = i
                }
                let b = bucket(all[i].time)
                if let k = buckets[b] {
                    lists[k].append(i)
                } else {
                    buckets[b] = lists.count
                    lists.append([i])
                }
            }
            var ratio = ratio ?? 0.2
            var last: Double?
            var out: [PreparedBlock] = []
            for list in lists {
                var start = 0
                while start < list.count {
                    let budget = Double(targetBytes) / max(ratio, 0.01)
                    var end = start + 1
                    var raw = all[list[start]].raw.count
                    while end < list.count, end - start < maxEventsBySize, Double(raw + all[list[end]].raw.count) <= budget {
                        raw += all[list[end]].raw.count
                        end += 1
                    }
                    let ix = Array(list[start..<end])
                    let enc = encode(ix, of: all, dictionary: dictionary)
                    if raw > 0 {
                        ratio = Double(enc.body.count) / Double(raw)
                        // A bucket's last block is cut short by its events, not by the budget: a poorer guide.
                        if end < list.count || last == nil { last = ratio }
                    }
                    out.append(PreparedBlock(indexes: ix, subjects: distinct(ix.lazy.map { all[$0].subject }), tmin: enc.tmin, tmax: enc.tmax,
                                             body: enc.body))
                    start = end
                }
            }
            return (out, last)
        }
    }
}

/// The preset dictionaries of event blocks (`event_dict`): the newest committed one compresses new
/// blocks (read on any thread), and every one stays to decode the blocks written with it.
final class EventDictionary: @unchecked Sendable {
    struct Entry: Sendable {
        let id: Int64
        let bytes: [UInt8]
    }

    private let lock = NSLock()
    private var current: Entry?
    private var known: [Int64: [UInt8]] = [:]
    /// The compressed size new blocks are cut to (`EventBlocks.targetBytes`), set from the store's page size.
    private var target = EventBlocks.targetBytes(pageSize: 8192)
    /// Compressed to raw bytes of the last block prepared, to predict the next one's size.
    private var ratio: Double?

    /// What an append's blocks are prepared with: the dictionary, the target size and the last ratio.
    var forPreparing: (entry: Entry?, targetBytes: Int, ratio: Double?) {
        lock.lock()
        defer { lock.unlock() }
        return (current, target, ratio)
    }

    func observe(ratio r: Double) {
        lock.lock()
        ratio = r
        lock.unlock()
    }

    func setTarget(pageSize: Int) {
        lock.lock()
        target = EventBlocks.targetBytes(pageSize: pageSize)
        lock.unlock()
    }

    /// The dictionary new blocks are compressed with (committed), if any.
    var forWriting: Entry? {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    /// Loads the newest dictionary as the one to write with (at open).
    func load(_ c: Connection) throws {
        let s = try c.prepare("SELECT id, body FROM event_dict ORDER BY id DESC LIMIT 1")
        defer { s.reset() }
        if try s.step() { setCurrent(Entry(id: s.int64(0), bytes: s.blob(1))) }
    }

    func setCurrent(_ e: Entry?) {
        lock.lock()
        current = e
        if let e { known[e.id] = e.bytes }
        lock.unlock()
    }

    /// The dictionary `id`, read through `c` the first time.
    func bytes(_ id: Int64, _ c: Connection) throws -> [UInt8] {
        lock.lock()
        if let b = known[id] {
            lock.unlock()
            return b
        }
        lock.unlock()
        let s = try c.prepare("SELECT body FROM event_dict WHERE id = ?")
        s.bind(1, id)
        defer { s.reset() }
        guard try s.step() else { throw StoreError.engine("event block dictionary \(id) is missing") }
        let b = s.blob(0)
        lock.lock()
        known[id] = b
        lock.unlock()
        return b
    }
}

/// The `event_blocks` rows, written by the writer session or a migration inside their transaction.
final class EventBlockTable {
    let conn: Connection
    let dictionary: EventDictionary
    private let insertStmt: Statement
    private let subjectLists: SubjectLists
    private let bySeq: Statement
    /// A dictionary entered by the open transaction, current once it commits.
    private var pendingDictionary: EventDictionary.Entry?
    /// Events of small appends kept to learn the dictionary from, while the store has none.
    private var sampleEvents: [CloudEvent] = []
    private var sampleBytes = 0
    /// The `(source, id)` pairs of recently read blocks, in two generations of `keysCacheLimit` blocks:
    /// a resend usually arrives soon after the event, so its block is read again and again.
    private var recentKeys: [Int64: [(source: String, id: String)]] = [:]
    private var olderKeys: [Int64: [(source: String, id: String)]] = [:]
    private let keysCacheLimit = 256

    init(conn: Connection, dictionary: EventDictionary) throws {
        self.conn = conn
        self.dictionary = dictionary
        insertStmt = try Statement(conn: conn, sql: "INSERT INTO event_blocks(tmin, tmax, n, body, skip) VALUES(?,?,?,?,?)")
        subjectLists = try SubjectLists(conn: conn)
        bySeq = try Statement(conn: conn, sql: "SELECT body, skip FROM event_blocks WHERE seq = ?")
        try dictionary.load(conn)
        dictionary.setTarget(pageSize: Int(try conn.scalarInt("PRAGMA page_size")))
        conn.onTransactionEnd { [weak self] committed in
            guard let self else { return }
            // A rolled-back block's seq may be used again, and its page is as it was before.
            if !committed {
                self.forgetCachedKeys()
                self.lastPage = BlockPages.LastPage()
            }
            guard let p = self.pendingDictionary else { return }
            self.pendingDictionary = nil
            guard committed else { return }
            self.dictionary.setCurrent(p)
            self.coveredTypes = EventBlocks.types(inDictionary: p.bytes)
            self.recentByType = [:]
            self.recentAppends = []
            self.recentAppendBytes = []
            self.seenSinceLearning = 0
            self.uncoveredSinceLearning = 0
            self.dictionaries = self.dictionaries.map { $0 + 1 }
        }
    }

    /// Learns the store's dictionary when it has none yet, once the appends since it was last tried
    /// hold enough bytes (`EventBlocks.dictionarySize`): from one large append, or from small ones
    /// gathered here. (It was learned only from an append of 32 KiB or more: a server whose clients
    /// post small requests, 100 events of about 270 bytes, never learned one, and stored a block of
    /// one event in 192 bytes where 90 would do.) It compresses blocks once its transaction commits.
    ///
    /// Learns a new one when events of types the current one lacks have come to be a share of the
    /// traffic (`relearnDue`): an order's later steps (picked, shipped, delivered, invoiced) arrive hours
    /// or days after its first ones, so a dictionary learned from a store's first 32 KiB of live
    /// traffic holds none of them. Older dictionaries stay for the blocks written with them.
    func learnDictionaryIfNeeded(from events: [CloudEvent]) throws {
        guard pendingDictionary == nil else {
            sampleEvents = []
            return
        }
        let from: [CloudEvent]
        if dictionary.forWriting != nil {
            guard relearnDue(after: events) else { return }
            from = recentByType.values.flatMap { $0 } + recentAppends.joined()
        } else {
            let bytes = events.reduce(0) { $0 + $1.raw.count }
            if bytes >= EventBlocks.dictionarySize {
                from = events
            } else {
                sampleEvents += events
                sampleBytes += bytes
                guard sampleBytes >= EventBlocks.dictionarySize else { return }
                from = sampleEvents
            }
            sampleEvents = []
            sampleBytes = 0
        }
        guard let sample = EventBlocks.dictionarySample(from) else { return }
        let s = try conn.prepare("INSERT INTO event_dict(body) VALUES(?)")
        s.bindBlob(1, sample)
        try s.run()
        pendingDictionary = EventDictionary.Entry(id: sqlite3_last_insert_rowid(conn.db), bytes: sample)
    }

    /// The types the current dictionary holds events of (read from its text), nil before it is known.
    private var coveredTypes: Set<String>?
    /// The latest few events of each type the current dictionary lacks, to learn the next one from (with
    /// the append's own events, which hold the common types).
    private var recentByType: [String: [CloudEvent]] = [:]
    private var recentAppends: [[CloudEvent]] = []
    private var recentAppendBytes: [Int] = []
    private var seenSinceLearning = 0
    private var uncoveredSinceLearning = 0
    /// Dictionaries in the store (each later one needs twice the events of the one before it).
    private var dictionaries: Int?

    /// Whether a new dictionary should be learned, counting `events` in: events of types the current
    /// one lacks are at least 1% of the events since it was learned, and those events number at least
    /// `relearnEvents` times 2^(dictionaries - 1). A store so holds a few dozen dictionaries at most,
    /// whatever its producers send (32 KiB each; a second after about 1,000 events, a third after
    /// 2,000 more, ...).
    private func relearnDue(after events: [CloudEvent]) -> Bool {
        let covered: Set<String>
        if let c = coveredTypes {
            covered = c
        } else {
            covered = EventBlocks.types(inDictionary: dictionary.forWriting?.bytes ?? [])
            coveredTypes = covered
        }
        seenSinceLearning += events.count
        // The latest appends, at least a dictionary's worth of bytes, to learn from with the rare types.
        recentAppends.append(events)
        recentAppendBytes.append(events.reduce(0) { $0 + $1.raw.count })
        while recentAppendBytes.count > 1, recentAppendBytes.reduce(0, +) - recentAppendBytes[0] >= 2 * EventBlocks.dictionarySize {
            recentAppends.removeFirst()
            recentAppendBytes.removeFirst()
        }
        // Every fourth event is looked at (the types' shares are what counts), each counting for four.
        for i in stride(from: 0, to: events.count, by: 4) where !covered.contains(events[i].type) {
            let e = events[i]
            uncoveredSinceLearning += 4
            if recentByType[e.type, default: []].count >= 3 { recentByType[e.type]!.removeFirst() }
            recentByType[e.type, default: []].append(e)
        }
        guard uncoveredSinceLearning > 0, uncoveredSinceLearning * 100 >= seenSinceLearning else { return false }
        if dictionaries == nil { dictionaries = (try? conn.scalarInt("SELECT count(*) FROM event_dict")) ?? 1 }
        let n = min(max(dictionaries ?? 1, 1), 40)
        return seenSinceLearning >= Self.relearnEvents << (n - 1)
    }

    /// Events after the first dictionary before a second one may be learned.
    static let relearnEvents = 1_000

    /// Compresses with the dictionary entered by the open transaction before it commits (a migration,
    /// whose blocks are all in that transaction).
    func adoptPendingDictionary() {
        if let p = pendingDictionary { dictionary.setCurrent(p) }
    }

    /// Inserts a block and its subjects' keys; returns its seq.
    func insert(subjects: [String], tmin: Micros, tmax: Micros, count: Int, body: [UInt8], hidden: [Int] = []) throws -> Int64 {
        let s = insertStmt
        s.reset()
        s.bind(1, tmin).bind(2, tmax).bind(3, count)
        s.bindBlob(4, body)
        let hiddenColumn = EventBlocks.hiddenColumn(hidden)
        if let h = hiddenColumn { s.bindBlob(5, h) } else { s.bind(5, nil as Int64?) }
        try s.run()
        let seq = sqlite3_last_insert_rowid(conn.db)
        lastPage.add(cell: BlockPages.cellSize(seq: seq, tmin: tmin, tmax: tmax, count: count, body: body.count, hidden: hiddenColumn?.count,
                                                usable: pageSize), usable: pageSize)
        for subject in subjects { try subjectLists.append(seq, to: subject) }
        return seq
    }

    /// The rows' room on the last page of `event_blocks`, as this writer has filled it (`BlockPages`).
    private var lastPage = BlockPages.LastPage()
    private lazy var pageSize = Int((try? conn.scalarInt("PRAGMA page_size")) ?? 8192)

    /// The order in which to insert rows so that they fill pages (`BlockPages.packingOrder`).
    func packingOrder(_ rows: [(count: Int, tmin: Micros, tmax: Micros, body: Int, hidden: Int?)]) -> [Int] {
        guard rows.count > 1, BlockPages.packing else { return Array(rows.indices) }
        let seq = (try? conn.scalarInt("SELECT coalesce(max(seq), 0) FROM event_blocks")).map { Int64($0) + 1 } ?? 1
        let cells = rows.map { BlockPages.cellSize(seq: seq, tmin: $0.tmin, tmax: $0.tmax, count: $0.count, body: $0.body, hidden: $0.hidden,
                                                    usable: pageSize) }
        return BlockPages.packingOrder(cells, free: lastPage.free(usable: pageSize), usable: pageSize)
    }

    /// Encodes and inserts events as one block; returns its seq.
    func insert<C: Collection>(_ events: C) throws -> Int64 where C.Element == CloudEvent {
        let enc = EventBlocks.encode(events, dictionary: dictionary.forWriting)
        return try insert(subjects: EventBlocks.subjects(events), tmin: enc.tmin, tmax: enc.tmax, count: events.count, body: enc.body)
    }

    /// The `(source, id)` pairs stored in block `seq` (empty when there is no such block).
    func keys(ofBlock seq: Int64) throws -> [(source: String, id: String)] {
        if let k = recentKeys[seq] ?? olderKeys[seq] { return k }
        let k = try readKeys(ofBlock: seq)
        if recentKeys.count >= keysCacheLimit {
            olderKeys = recentKeys
            recentKeys = [:]
        }
        recentKeys[seq] = k
        return k
    }

    /// Blocks were rewritten or rolled back: forget what was read of them.
    func forgetCachedKeys() {
        recentKeys.removeAll()
        olderKeys.removeAll()
    }

    private func readKeys(ofBlock seq: Int64) throws -> [(source: String, id: String)] {
        bySeq.reset()
        bySeq.bind(1, seq)
        defer { bySeq.reset() }
        guard try bySeq.step() else { return [] }
        let hidden = bySeq.isNull(1) ? [] : try EventBlocks.hidden(bySeq.blob(1))
        return try EventBlocks.keys(bySeq.blob(0), hidden: hidden) { try dictionary.bytes($0, conn) }
    }

    /// Reads a block's events through `c`, reporting a block that cannot be read as the engine error it is.
    /// The stored events of a block row (`skip` is its column), with their indexes in the block.
    static func decode(_ body: [UInt8], skip: [UInt8]?, seq: Int64, only: Set<String>? = nil, dictionary: EventDictionary,
                       _ c: Connection) throws -> [(index: Int, event: CloudEvent)] {
        do {
            let hidden = try skip.map(EventBlocks.hidden) ?? []
            return try EventBlocks.decode(body, hidden: hidden, only: only) { try dictionary.bytes($0, c) }
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError.engine("event block \(seq): \(error)")
        }
    }

    /// Every event of the subjects: subject by subject in the order given, each by time (ties in the
    /// order they were stored).
    static func events(ofSubjects subjects: [String], dictionary: EventDictionary, _ c: Connection) throws -> [CloudEvent] {
        let keys = try c.prepare("SELECT seqs FROM event_subjects WHERE subject = ?")
        var seqs = Set<Int64>()
        for k in subjects {
            keys.reset()
            keys.bind(1, k)
            while try keys.step() { seqs.formUnion(try SubjectBlocks.seqs(keys.blob(0))) }
        }
        keys.reset()
        let wanted = Set(subjects)
        let q = try c.prepare("SELECT body, skip FROM event_blocks WHERE seq = ?")
        defer { q.reset() }
        var bySubject: [String: [CloudEvent]] = [:]
        for seq in seqs.sorted() {
            q.reset()
            q.bind(1, seq)
            guard try q.step() else { continue }
            for (_, e) in try decode(q.blob(0), skip: q.isNull(1) ? nil : q.blob(1), seq: seq, only: wanted,
                                     dictionary: dictionary, c) {
                bySubject[e.subject, default: []].append(e)
            }
        }
        var out: [CloudEvent] = []
        for k in subjects {
            // A stable sort: events of equal time keep their stored order.
            out += (bySubject[k] ?? []).enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
        }
        return out
    }
}

extension EventBlockTable {
    /// Events with `time` in `range` after `(afterTime, afterTie)`, in `(time, tie)` order, at most
    /// `limit` (and whether more follow). `tie` is `seq << 20 | index in block`: the order in which they
    /// were stored. A block holds times within one hour, so only blocks whose first time is at most an
    /// hour before the range are read; once `limit + 1` events are found, a block starting after the
    /// latest of them cannot change the answer.
    static func scan(in range: Range<Micros>, after: (time: Micros, tie: Int64)?, limit: Int, dictionary: EventDictionary,
                     _ c: Connection) throws -> (events: [(event: CloudEvent, tie: Int64)], more: Bool) {
        guard !range.isEmpty, limit > 0 else { return ([], false) }
        let lo = max(range.lowerBound, after?.time ?? range.lowerBound)
        let s = try c.prepare("""
            SELECT seq, tmin, body, skip FROM event_blocks WHERE tmin >= ? AND tmin < ? AND tmax >= ? ORDER BY tmin
            """)
        s.bind(1, EventBlocks.earliestBlockStart(for: lo)).bind(2, range.upperBound).bind(3, lo)
        defer { s.reset() }
        var found: [(event: CloudEvent, tie: Int64)] = []
        var bound: Micros?
        func isAfter(_ t: Micros, _ tie: Int64) -> Bool {
            guard let after else { return true }
            return (t, tie) > (after.time, after.tie)
        }
        while try s.step() {
            if let bound, s.int64(1) > bound { break }
            let seq = s.int64(0)
            let events = try decode(s.blob(2), skip: s.isNull(3) ? nil : s.blob(3), seq: seq, dictionary: dictionary, c)
            for (i, e) in events where range.contains(e.time) {
                let tie = seq << 20 | Int64(i)
                if isAfter(e.time, tie) { found.append((e, tie)) }
            }
            if found.count > limit {
                found.sort { ($0.event.time, $0.tie) < ($1.event.time, $1.tie) }
                found.removeSubrange((limit + 1)...)
                bound = found[limit].event.time
            }
        }
        found.sort { ($0.event.time, $0.tie) < ($1.event.time, $1.tie) }
        let more = found.count > limit
        return (Array(found.prefix(limit)), more)
    }
}

/// The `event_subjects` rows (schema version 14): which blocks hold events of a subject, as a list of
/// block seqs per subject rather than a row per subject and block. Interleaved arrival puts nearly
/// every event of an order in a block of its own, so a row per (subject, block) cost about as many rows
/// as events (21-25 bytes an event, the subject repeated in each); a list costs the subject once and
/// about 3 bytes a block.
///
/// A subject's open list is its row of `part` 0; a block's seq is appended to it as a varint (`seqs` is
/// a plain concatenation of varints, so the append is one upsert that does not read the list back).
/// Once the open list holds `partBytes` bytes it is closed: renamed to `part` = the last seq it holds
/// (unique, since a seq is appended once per subject), so a row stays around a few dozen seqs and a
/// subject with many events costs a few more rows, not an ever larger one rewritten at each append.
/// The writer counts the bytes it appended per subject (`SubjectLists`) and reads a list's stored
/// length only when that count reaches `partBytes`, so an append is one statement. After a restart
/// the count starts again from 0, so a list may reach up to twice `partBytes` before it is closed.
/// Readers take the union of every part; the order of the seqs does not matter.
enum SubjectBlocks {
    /// Bytes after which an open list is closed: about 40 seqs of 3 bytes.
    static let partBytes = 120

    static let createSQL = """
        CREATE TABLE IF NOT EXISTS event_subjects(subject TEXT NOT NULL, part INTEGER NOT NULL, seqs BLOB NOT NULL,
                                                  PRIMARY KEY(subject, part)) WITHOUT ROWID;
        """
    static let appendSQL = """
        INSERT INTO event_subjects(subject, part, seqs) VALUES(?, 0, ?)
        ON CONFLICT(subject, part) DO UPDATE SET seqs = CAST(seqs || excluded.seqs AS BLOB)
        """
    static let lengthSQL = "SELECT length(seqs) FROM event_subjects WHERE subject = ? AND part = 0"
    static let closeSQL = "UPDATE event_subjects SET part = ? WHERE subject = ? AND part = 0"

    static func varint(_ seq: Int64) -> [UInt8] {
        var out = ByteSink()
        out.unsigned(UInt64(bitPattern: seq))
        return out.bytes
    }

    /// The seqs of one `seqs` column.
    static func seqs(_ column: [UInt8]) throws -> [Int64] {
        var s = ByteSource(column)
        var out: [Int64] = []
        while !s.atEnd { out.append(Int64(bitPattern: try s.unsigned())) }
        return out
    }

    static func encode<S: Sequence>(_ seqs: S) -> [UInt8] where S.Element == Int64 {
        var out = ByteSink()
        for q in seqs { out.unsigned(UInt64(bitPattern: q)) }
        return out.bytes
    }


    /// Writes the lists of `bySubject` (seqs in ascending order) as closed parts of at most
    /// `partBytes` bytes and an open part of the rest: a conversion or a rewrite after retention, after
    /// the subject's rows were deleted.
    static func write(_ subject: String, _ seqs: [Int64], _ c: Connection) throws {
        let ins = try c.prepare("INSERT INTO event_subjects(subject, part, seqs) VALUES(?, ?, ?)")
        var part: [UInt8] = []
        for (i, q) in seqs.enumerated() {
            part += varint(q)
            guard part.count >= partBytes || i == seqs.count - 1 else { continue }
            ins.reset()
            try ins.bind(1, subject).bind(2, part.count >= partBytes ? q : 0).bindBlob(3, part).run()
            part.removeAll(keepingCapacity: true)
        }
        ins.reset()
    }

    /// Converts the `event_keys` rows of schema version 13 (a row per subject and block) to lists, then
    /// drops `event_keys`.
    static func convertVersion13Keys(_ c: Connection) throws {
        // A store whose version was set back by hand (the tests of older conversions) has no such table.
        guard try c.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'event_keys'") > 0 else { return }
        let s = try c.prepare("SELECT subject, seq FROM event_keys ORDER BY subject, seq")
        var subject: String?
        var seqs: [Int64] = []
        while try s.step() {
            let k = s.text(0)
            if k != subject, let subject { try write(subject, seqs, c); seqs.removeAll(keepingCapacity: true) }
            subject = k
            seqs.append(s.int64(1))
        }
        s.reset()
        if let subject { try write(subject, seqs, c) }
        try c.exec("DROP TABLE event_keys")
    }

    /// Removes `seqs` from the lists of `subject` (retention), rewriting its rows.
    static func remove(_ gone: Set<Int64>, from subject: String, _ c: Connection) throws {
        let sel = try c.prepare("SELECT seqs FROM event_subjects WHERE subject = ?")
        sel.bind(1, subject)
        var kept = Set<Int64>()
        while try sel.step() { kept.formUnion(try seqs(sel.blob(0))) }
        sel.reset()
        kept.subtract(gone)
        try c.prepare("DELETE FROM event_subjects WHERE subject = ?").bind(1, subject).run()
        try write(subject, kept.sorted(), c)
    }
}

/// The writer's appends to the subjects' open lists (`SubjectBlocks`).
final class SubjectLists {
    private let upsert: Statement
    private let length: Statement
    private let close: Statement
    /// Bytes appended to the open list of each subject since this process started counting, by a hash
    /// of the subject: a collision only makes the length check come sooner (it then reads the true length).
    private var appended = [UInt8](repeating: 0, count: 1 << 20)

    init(conn: Connection) throws {
        upsert = try Statement(conn: conn, sql: SubjectBlocks.appendSQL)
        length = try Statement(conn: conn, sql: SubjectBlocks.lengthSQL)
        close = try Statement(conn: conn, sql: SubjectBlocks.closeSQL)
    }

    /// Appends `seq` to the open list of `subject`, closing the list once it holds `partBytes` bytes.
    func append(_ seq: Int64, to subject: String) throws {
        let v = SubjectBlocks.varint(seq)
        upsert.reset()
        try upsert.bind(1, subject).bindBlob(2, v).run()
        let slot = subject.hashValue & (appended.count - 1)
        let counted = Int(appended[slot]) + v.count
        guard counted >= SubjectBlocks.partBytes else {
            appended[slot] = UInt8(counted)
            return
        }
        length.reset()
        length.bind(1, subject)
        let stored = try length.step() ? Int(length.int64(0)) : 0
        length.reset()
        guard stored >= SubjectBlocks.partBytes else {
            appended[slot] = UInt8(min(stored, SubjectBlocks.partBytes - 1))
            return
        }
        close.reset()
        try close.bind(1, seq).bind(2, subject).run()
        appended[slot] = 0
    }
}

/// Hashes (`DedupIndex.hash`) of the `(source, id)` of recent appends' events, stored or on their way
/// to the writer, in a table of `1 << bits` slots that keeps the latest hash of each slot: what the
/// callers preparing blocks leave out as a likely resend (most resends of interleaved arrival come
/// seconds after the first copy, while it is still in flight). Lossy both ways: an evicted hash makes a
/// resend a hidden event of its block (as without this table), and a hash held by mistake (an append
/// that failed after it was taken in, or was deleted since) makes the writer store the event in a
/// block of its own.
final class RecentEventKeys: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Int64]
    private let mask: Int

    init(bits: Int = 19) {
        slots = [Int64](repeating: 0, count: 1 << bits)
        mask = (1 << bits) - 1
    }

    private static func key(_ h: Int64) -> Int64 { h == 0 ? 1 : h }

    /// Which of `hashes` were held, taking each in after looking it up (so a second copy within
    /// `hashes` is found too).
    func takeIn(_ hashes: [Int64]) -> [Bool] {
        lock.lock()
        defer { lock.unlock() }
        return hashes.map { h in
            let i = Int(truncatingIfNeeded: h) & mask, k = Self.key(h)
            defer { slots[i] = k }
            return slots[i] == k
        }
    }

    /// Forgets `hashes` (of an append that failed), where their slots still hold them.
    func forget<S: Sequence>(_ hashes: S) where S.Element == Int64 {
        lock.lock()
        defer { lock.unlock() }
        for h in hashes {
            let i = Int(truncatingIfNeeded: h) & mask
            if slots[i] == Self.key(h) { slots[i] = 0 }
        }
    }
}

/// How `event_blocks` rows fill pages. Rows are appended at the end of the table, and SQLite puts a
/// row that does not fit on the last page alone on a new one (`balance_quick`), so the last page is
/// left with whatever room the row lacked: blocks of 100-event HTTP appends (a few full ones and a
/// small rest per request) left 15% of the pages unused. The writer inserts a write's blocks in the
/// order that fills the last page best, and follows that page's room from the rows' exact cell sizes.
/// Its count can be off (after a restart, a rollback or retention; it starts from an empty page); it
/// is right again after the first row that starts a new page in both the count and the file.
enum BlockPages {
    /// `WAYBILL_BLOCK_PACKING=off` inserts rows in arrival order, for A/B benchmarks.
    static let packing = ProcessInfo.processInfo.environment["WAYBILL_BLOCK_PACKING"] != "off"

    struct LastPage {
        /// Bytes of cells and cell pointers on the last page; nil when not followed yet.
        var used: Int?

        mutating func add(cell: Int, usable: Int) {
            let room = usable - 8 - (used ?? 0)
            used = cell > room ? cell : (used ?? 0) + cell
        }

        func free(usable: Int) -> Int { usable - 8 - (used ?? 0) }
    }

    /// Bytes a row takes on a leaf page of a rowid table: its cell (payload size, rowid, the record or
    /// its local part and an overflow pointer) and its 2-byte cell pointer. The record is the columns
    /// `seq` (the rowid: NULL), `tmin`, `tmax`, `n`, `body` and `skip` (NULL when nothing is hidden).
    static func cellSize(seq: Int64, tmin: Micros, tmax: Micros, count: Int, body: Int, hidden: Int?, usable: Int) -> Int {
        func varint(_ v: Int) -> Int {
            var n = 1, x = UInt64(v)
            while x >= 0x80, n < 9 { x >>= 7; n += 1 }
            return n
        }
        func integer(_ v: Int64) -> (type: Int, size: Int) {
            if v == 0 { return (8, 0) }
            if v == 1 { return (9, 0) }
            let a = v < 0 ? ~v : v
            if a < 1 << 7 { return (1, 1) }
            if a < 1 << 15 { return (2, 2) }
            if a < 1 << 23 { return (3, 3) }
            if a < 1 << 31 { return (4, 4) }
            if a < 1 << 47 { return (5, 6) }
            return (6, 8)
        }
        var types = [0]
        var data = 0
        for v in [tmin, tmax, Int64(count)] {
            let t = integer(v)
            types.append(t.type)
            data += t.size
        }
        types.append(body * 2 + 12)
        data += body
        types.append(hidden.map { $0 * 2 + 12 } ?? 0)
        data += hidden ?? 0
        var header = types.reduce(0) { $0 + varint($1) }
        header += varint(header + 1)
        let payload = header + data
        // SQLite's local part of a table leaf cell (btreeParseCellAdjustSizeForOverflow).
        let maxLocal = usable - 35, minLocal = (usable - 12) * 32 / 255 - 23
        var local = payload
        var overflow = 0
        if payload > maxLocal {
            let surplus = minLocal + (payload - minLocal) % (usable - 4)
            local = surplus <= maxLocal ? surplus : minLocal
            overflow = 4
        }
        return 2 + varint(payload) + varint(Int(seq)) + max(local + overflow, 4)
    }

    /// An order of rows (by their cell sizes) that fills pages: the largest row that fits the last
    /// page's room goes next; when none does, the largest starts a new page.
    static func packingOrder(_ cells: [Int], free: Int, usable: Int) -> [Int] {
        var left = Array(cells.indices).sorted { cells[$0] > cells[$1] }
        var room = free
        var out: [Int] = []
        out.reserveCapacity(cells.count)
        while !left.isEmpty {
            let k = left.firstIndex { cells[$0] <= room } ?? 0
            let i = left.remove(at: k)
            room = cells[i] <= room ? room - cells[i] : usable - 8 - cells[i]
            out.append(i)
        }
        return out
    }
}

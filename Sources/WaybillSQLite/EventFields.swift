import WaybillModel

/// The CloudEvents attributes of an event read from its JSON text without parsing its `data`: what an
/// event block of format 2 leaves out of its columns (`EventBlocks`).
///
/// `scan` reads the top-level members `id`, `source`, `type`, `subject`, `time` and `traceparent` as
/// they are written. It gives up (nil) on anything but the plain case: malformed JSON, a key written with
/// an escape, one of those members twice or not a string, or a value holding an escape. The block
/// encoder stores an event without its attribute columns only when `scan` of its text gives exactly its
/// attributes, so reading the columns back from the text is exact; any other event keeps its columns.
struct EventFields: Equatable {
    var id: String
    var source: String
    var type: String
    var subject: String
    var time: Micros
    var traceID: String?

    init(id: String, source: String, type: String, subject: String, time: Micros, traceID: String?) {
        self.id = id
        self.source = source
        self.type = type
        self.subject = subject
        self.time = time
        self.traceID = traceID
    }

    init(_ e: CloudEvent) {
        self.init(id: e.id, source: e.source, type: e.type, subject: e.subject, time: e.time, traceID: e.traceID)
    }

    static func scan(_ raw: ArraySlice<UInt8>) -> EventFields? {
        raw.withUnsafeBufferPointer { scan($0) }
    }

    static func scan(_ raw: [UInt8]) -> EventFields? {
        raw.withUnsafeBufferPointer { scan($0) }
    }

    // Wanted members, by index: id, source, type, subject, time, traceparent.
    private static let names: [[UInt8]] = ["id", "source", "type", "subject", "time", "traceparent"].map { Array($0.utf8) }

    static func scan(_ b: UnsafeBufferPointer<UInt8>) -> EventFields? {
        members(b).flatMap { scan(b, $0) }
    }

    /// The attributes of `b` whose members are `m`.
    static func scan(_ b: UnsafeBufferPointer<UInt8>, _ m: Members) -> EventFields? {
        guard let id = m.id, let source = m.source, let type = m.type, let subject = m.subject,
              let time = m.time else { return nil }
        func text(_ r: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: b[r]), as: UTF8.self) }
        guard let t = RFC3339.parse(bytes: UnsafeBufferPointer(rebasing: b[time])) else { return nil }
        return EventFields(id: text(id), source: text(source), type: text(type), subject: text(subject), time: t,
                           traceID: m.traceparent.flatMap { Traceparent.traceID(text($0)) })
    }

    /// Where the wanted members' string values lie in an event's JSON text (the bytes between their quotes).
    struct Members {
        var ranges: [Range<Int>?]
        var id: Range<Int>? { ranges[0] }
        var source: Range<Int>? { ranges[1] }
        var type: Range<Int>? { ranges[2] }
        var subject: Range<Int>? { ranges[3] }
        var time: Range<Int>? { ranges[4] }
        var traceparent: Range<Int>? { ranges[5] }
    }

    static func members(_ raw: ArraySlice<UInt8>) -> Members? {
        raw.withUnsafeBufferPointer { members($0) }
    }

    /// The ranges of the top-level members `id`, `source`, `type`, `subject`, `time` and `traceparent`
    /// in `b` (nil for one that is absent), as `scan` reads them; nil where `scan` gives up, except that
    /// members may be absent and values are not checked (an empty `time` is accepted: a block of format 4
    /// cuts time values out of the text).
    static func members(_ b: UnsafeBufferPointer<UInt8>) -> Members? {
        let n = b.count
        var i = 0
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        func skipSpace() {
            while i < n, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }
        // A string at i: its content's range, and whether it holds an escape; i moves past it.
        func string() -> (Range<Int>, Bool)? {
            guard i < n, b[i] == quote else { return nil }
            i += 1
            let start = i
            var escaped = false
            while i < n {
                let c = b[i]
                if c == quote {
                    i += 1
                    return (start..<(i - 1), escaped)
                }
                if c == backslash {
                    escaped = true
                    i += 2
                } else {
                    i += 1
                }
            }
            return nil
        }
        // Any value at i; i moves past it.
        func skipValue() -> Bool {
            guard i < n else { return false }
            switch b[i] {
            case quote:
                return string() != nil
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while i < n {
                    let c = b[i]
                    if c == quote {
                        guard string() != nil else { return false }
                        continue
                    }
                    if c == UInt8(ascii: "{") || c == UInt8(ascii: "[") {
                        depth += 1
                    } else if c == UInt8(ascii: "}") || c == UInt8(ascii: "]") {
                        depth -= 1
                        if depth == 0 {
                            i += 1
                            return true
                        }
                    }
                    i += 1
                }
                return false
            default:
                let start = i
                while i < n {
                    let c = b[i]
                    if c == UInt8(ascii: ",") || c == UInt8(ascii: "}") || c == UInt8(ascii: "]") || c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { break }
                    i += 1
                }
                return i > start
            }
        }
        var found: [Range<Int>?] = [nil, nil, nil, nil, nil, nil]
        skipSpace()
        guard i < n, b[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        skipSpace()
        if i < n, b[i] == UInt8(ascii: "}") { return nil }
        while true {
            skipSpace()
            guard let (key, keyEscaped) = string(), !keyEscaped else { return nil }
            skipSpace()
            guard i < n, b[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            skipSpace()
            var wanted = -1
            for (w, name) in names.enumerated() where name.count == key.count {
                if name.withUnsafeBufferPointer({ nb in (0..<key.count).allSatisfy { nb[$0] == b[key.lowerBound + $0] } }) {
                    wanted = w
                    break
                }
            }
            if wanted >= 0 {
                guard found[wanted] == nil, let (value, escaped) = string(), !escaped else { return nil }
                found[wanted] = value
            } else {
                guard skipValue() else { return nil }
            }
            skipSpace()
            guard i < n else { return nil }
            if b[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            guard b[i] == UInt8(ascii: "}") else { return nil }
            i += 1
            break
        }
        skipSpace()
        guard i == n else { return nil }
        return Members(ranges: found)
    }
}

/// An event's time read from its JSON text (one NDJSON line) without decoding the event: its top-level
/// `time` member found as `EventFields.members` finds it. Nil where that reading gives up (the line is
/// then decoded, and accepted or rejected, as usual). The key by which `waybill ingest` sorts its input.
public enum EventLineTime {
    public static func micros(_ line: UnsafeBufferPointer<UInt8>) -> Micros? {
        guard let r = EventFields.members(line)?.time else { return nil }
        return RFC3339.parse(bytes: UnsafeBufferPointer(rebasing: line[r]))
    }
}

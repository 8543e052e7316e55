import Foundation
import Testing
import WaybillModel
import WaybillTestSupport
@testable import WaybillReports

/// The export's time text is `RFC3339.format`'s, byte for byte.
@Test func ocelTimeTextEqualsRFC3339() {
    var rng = SplitMix(99)
    var text = OCELTimeText()
    var times: [Micros] = [0, -1, -1_000_000, 1_000, 999_999, 1_000_000, t("2026-11-30T23:59:59.999999Z"), t("2000-02-29T00:00:00.5Z"), -62_135_596_800_000_000]
    for _ in 0..<20_000 {
        let base = Int64(rng.next() % (200 * 365 * 86_400)) * 1_000_000 - 50 * 365 * 86_400_000_000
        switch rng.next() % 4 {
        case 0: times.append(base)
        case 1: times.append(base + Int64(rng.next() % 1000) * 1000)
        default: times.append(base + Int64(rng.next() % 1_000_000))
        }
    }
    times += times.sorted()
    for time in times {
        var bytes: [UInt8] = []
        text.write(time, into: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == RFC3339.format(time), "\(time)")
        if String(decoding: bytes, as: UTF8.self) != RFC3339.format(time) { return }
    }
}

/// JSON strings (`JSONWriter.string`, which copies runs that need no escape, and the export's buffer that
/// calls it) equal a per-byte escape, byte for byte: plain runs, every escape, control characters,
/// multi-byte UTF-8 and bridged (non-native) strings.
@Test func ocelQuotedStringsEqualJSONWriter() {
    var rng = SplitMix(7)
    let pieces = ["a", "SO-00000001", "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1f}", "\u{7f}", " ", "é", "日本", "🚚", "/", "\u{2028}"]
    var samples: [String] = ["", "plain", "warehouse:DC-EAST", "[{\"line\":1,\"qty\":3}]"]
    for _ in 0..<5_000 {
        var s = ""
        for _ in 0..<Int(rng.next() % 12) { s += pieces[Int(rng.next() % UInt64(pieces.count))] }
        samples.append(s)
    }
    samples.append(String(Substring("xx\"yy\\zz").dropFirst()))
    for s in samples {
        var reference: [UInt8] = [0x22]
        for c in s.utf8 {
            switch c {
            case 0x22: reference += [0x5C, 0x22]
            case 0x5C: reference += [0x5C, 0x5C]
            case 0x0A: reference += Array("\\n".utf8)
            case 0x0D: reference += Array("\\r".utf8)
            case 0x09: reference += Array("\\t".utf8)
            case 0..<0x20: reference += Array(String(format: "\\u%04x", c).utf8)
            default: reference.append(c)
            }
        }
        reference.append(0x22)
        var writer = JSONWriter()
        writer.string(s)
        #expect(writer.bytes == reference, "\(s.debugDescription)")
        var chunks: [[UInt8]] = []
        var buffer = OCELOutputBuffer(chunkBytes: 1 << 20) { chunks.append($0) }
        buffer.string(s)
        try? buffer.flush()
        #expect(chunks.joined().elementsEqual(reference), "\(s.debugDescription)")
        if writer.bytes != reference { return }
    }
}

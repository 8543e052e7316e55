import Foundation
import Testing
@testable import WaybillSQLite
import WaybillModel
import WaybillStore
import WaybillStoreConformance
import WaybillTestSupport

/// `event_subjects` (schema version 14): a subject's blocks as lists of seqs, closed in parts.
@Suite struct SubjectBlocksTests {
    /// The lists as (subject, part, seqs) rows.
    static func rows(_ c: Connection) throws -> [(subject: String, part: Int64, seqs: [Int64])] {
        let s = try c.prepare("SELECT subject, part, seqs FROM event_subjects ORDER BY subject, part")
        defer { s.reset() }
        var out: [(subject: String, part: Int64, seqs: [Int64])] = []
        while try s.step() { out.append((s.text(0), s.int64(1), try SubjectBlocks.seqs(s.blob(2)))) }
        return out
    }

    /// Every subject's set of blocks, from the lists.
    static func blocksBySubject(_ c: Connection) throws -> [String: Set<Int64>] {
        var out: [String: Set<Int64>] = [:]
        for r in try rows(c) { out[r.subject, default: []].formUnion(r.seqs) }
        return out
    }

    /// The subjects of each stored block, read from the blocks themselves: what the lists must say.
    static func blocksBySubjectFromBodies(_ c: Connection) throws -> [String: Set<Int64>] {
        let dictionary = EventDictionary()
        var out: [String: Set<Int64>] = [:]
        let s = try c.prepare("SELECT seq, body, skip FROM event_blocks")
        defer { s.reset() }
        while try s.step() {
            let seq = s.int64(0)
            for (_, e) in try EventBlockTable.decode(s.blob(1), skip: s.isNull(2) ? nil : s.blob(2), seq: seq, dictionary: dictionary, c) {
                out[e.subject, default: []].insert(seq)
            }
        }
        return out
    }

    @Test func listsAreClosedInPartsAndTracesReadEveryPart() async throws {
        let path = temporaryDatabase()
        // One busy subject in 300 appends of its own (300 blocks: several closed parts) among other
        // orders' events, written in one-event appends as interleaved arrival does, plus resends.
        var events: [CloudEvent] = []
        for i in 0..<300 {
            events.append(EventBlockStorageTests.oddEvent(i, subject: "ORD-BUSY", minutes: i))
            events.append(EventBlockStorageTests.oddEvent(10_000 + i, subject: "ORD-\(i % 37)", minutes: i))
        }
        let s = try SQLiteStore(path: path)
        for (i, e) in events.enumerated() {
            _ = try await s.append(i % 9 == 0 && i > 0 ? [e, events[i - 1]] : [e])
        }
        let c = try Connection(path: path)
        let rows = try Self.rows(c)
        let busy = rows.filter { $0.subject == "ORD-BUSY" }
        #expect(busy.count >= 4)
        #expect(busy.filter { $0.part == 0 }.count <= 1)
        for r in busy where r.part != 0 {
            #expect(r.seqs.last == r.part)
            #expect(SubjectBlocks.encode(r.seqs).count >= SubjectBlocks.partBytes)
            #expect(SubjectBlocks.encode(r.seqs).count < 2 * SubjectBlocks.partBytes)
        }
        #expect(try Self.blocksBySubject(c) == Self.blocksBySubjectFromBodies(c))
        #expect(try s.trace(key: "ORD-BUSY")?.events.map(\.raw) == events.filter { $0.subject == "ORD-BUSY" }.map(\.raw))
        for k in 0..<37 {
            #expect(try s.trace(key: "ORD-\(k)")?.events.map(\.raw) == events.filter { $0.subject == "ORD-\(k)" }.map(\.raw))
        }

        // Retention of the first 100 minutes: the lists lose exactly the blocks that no longer hold the
        // subject, and the traces keep the later events.
        let cutoff = EventBlockStorageTests.oddEvent(0, subject: "x", minutes: 100).time
        #expect(try await s.deleteEvents(before: cutoff) == 200)
        #expect(try Self.blocksBySubject(c) == Self.blocksBySubjectFromBodies(c))
        #expect(try s.trace(key: "ORD-BUSY")?.events.map(\.raw) == events.filter { $0.subject == "ORD-BUSY" && $0.time >= cutoff }.map(\.raw))
        s.close()

        // Reopened: appends go on into the open part (or a new one) and the traces stay whole.
        let again = try SQLiteStore(path: path)
        defer { again.close() }
        let later = (300..<340).map { EventBlockStorageTests.oddEvent($0, subject: "ORD-BUSY", minutes: $0) }
        for e in later { _ = try await again.append([e]) }
        #expect(try again.trace(key: "ORD-BUSY")?.events.map(\.raw)
                == (events.filter { $0.subject == "ORD-BUSY" && $0.time >= cutoff } + later).map(\.raw))
        #expect(try Self.blocksBySubject(c) == Self.blocksBySubjectFromBodies(c))
    }

    /// A store of schema version 13 (a row per subject and block in `event_keys`) is converted when it
    /// opens: the same traces, every resend refused, and appends after it listed.
    @Test func rowsPerSubjectAndBlockAreConvertedToListsAtOpen() async throws {
        let path = temporaryDatabase()
        let events = StoreConformance.workload(orders: 60)
        var traces: [String: [[UInt8]]] = [:]
        do {
            let s = try SQLiteStore(path: path)
            for i in stride(from: 0, to: events.count, by: 5) { _ = try await s.append(Array(events[i..<min(i + 5, events.count)])) }
            for k in Set(events.map(\.subject)) { traces[k] = try s.trace(key: k)?.events.map(\.raw) }
            s.close()
        }
        // Back to version 13: the lists as rows of event_keys.
        let c = try Connection(path: path)
        let lists = try Self.blocksBySubject(c)
        #expect(lists == (try Self.blocksBySubjectFromBodies(c)))
        try c.exec("CREATE TABLE event_keys(subject TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(subject, seq)) WITHOUT ROWID")
        let ins = try c.prepare("INSERT INTO event_keys(subject, seq) VALUES(?, ?)")
        for (k, seqs) in lists {
            for q in seqs {
                ins.reset()
                try ins.bind(1, k).bind(2, q).run()
            }
        }
        ins.reset()
        try c.exec("DROP TABLE event_subjects; UPDATE meta SET value = '13' WHERE key = 'schema_version'")

        let s = try SQLiteStore(path: path)
        defer { s.close() }
        #expect(try c.scalarInt("SELECT value FROM meta WHERE key = 'schema_version'") == Schema.migrations.count)
        #expect(try c.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'event_keys'") == 0)
        #expect(try Self.blocksBySubject(c) == lists)
        for (k, raws) in traces { #expect(try s.trace(key: k)?.events.map(\.raw) == raws) }
        #expect(try await s.append(events.shuffled()) == AppendResult(accepted: 0, duplicates: events.count))
        let more = (0..<30).map { EventBlockStorageTests.oddEvent($0, subject: "NOTE-\($0 % 3)", minutes: $0) }
        #expect(try await s.append(more + more) == AppendResult(accepted: 30, duplicates: 30))
        #expect(try Self.blocksBySubject(c) == Self.blocksBySubjectFromBodies(c))
        for k in 0..<3 { #expect(try s.trace(key: "NOTE-\(k)")?.events.map(\.raw) == more.filter { $0.subject == "NOTE-\(k)" }.map(\.raw)) }
    }
}

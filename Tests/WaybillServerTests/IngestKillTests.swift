import Foundation
import Testing
import WaybillKPI
import WaybillModel
@testable import WaybillSQLite
import WaybillStore
import WaybillStoreConformance
import WaybillTestSupport

/// `waybill ingest --db` defers order rows (docs/storage.md): killed with -9 while rows wait, the store
/// must recompute their facts at the next open, and the same load run again must end as a clean one.
@Suite(.serialized) struct IngestKillTests {
    @Test func aKilledLoadLeavesFactsThatTheNextOpenRecomputes() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else {
            Issue.record("waybill binary not found at \(ServerProcess.binary.path)")
            return
        }
        // 12,000 orders' events merged by time (each batch of 200 touches many orders), a tenth resent.
        let events = StoreConformance.workload(orders: 12_000)
        var rng = SplitMix64(seed: 0x4B11)
        var stream = events.sorted { ($0.time, $0.id) < ($1.time, $1.id) }
        for e in events where rng.next() % 10 == 0 { stream.insert(e, at: Int(rng.next() % UInt64(stream.count + 1))) }
        let db = temporaryDatabase()
        let file = URL(fileURLWithPath: db).deletingLastPathComponent().appendingPathComponent("load.ndjson")
        try Data(stream.map { String(decoding: $0.raw, as: UTF8.self) }.joined(separator: "\n").utf8).write(to: file)

        // The load reads stdin, and gets only the first two thirds of the lines until it is killed: it reads
        // in 4 MiB blocks, so it commits the first blocks' batches and then waits for more input with its
        // order rows waiting. No race with the load's speed (a file could be read to its end, and the rows
        // written at close, before a loaded machine's poll saw them waiting).
        let lines = stream.map { String(decoding: $0.raw, as: UTF8.self) }
        let head = Data(lines.prefix(lines.count * 2 / 3).joined(separator: "\n").utf8 + [0x0A])
        try #require(head.count > 9 << 20, "the first part must span more than two read blocks: \(head.count) bytes")
        signal(SIGPIPE, SIG_IGN)  // the writer thread's pipe loses its reader at the kill: an EPIPE, not a signal
        let input = Pipe()
        let p = Process()
        p.executableURL = ServerProcess.binary
        p.arguments = ["ingest", "-", "--db", db, "--batch", "200"]
        p.standardInput = input
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let writer = input.fileHandleForWriting
        Thread.detachNewThread { try? writer.write(contentsOf: head) }  // blocks while the pipe is full; ends at the kill
        // Kill once a few batches are committed while their orders' rows wait.
        var waiting = false
        let deadline = Date().addingTimeInterval(180)
        while Date() < deadline, p.isRunning {
            if let c = try? Connection(path: db, readOnly: true),
               let q = try? c.prepare("SELECT (SELECT count(*) FROM event_blocks), (SELECT count(*) FROM meta WHERE key = 'facts_rollups_pending_from')"),
               (try? q.step()) == true, q.int64(0) >= 20, q.int64(1) == 1 {
                waiting = true
                q.reset()
                break
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        kill(p.processIdentifier, SIGKILL)
        await p.exited()
        try? writer.close()
        try #require(waiting, "the load ended before rows were seen waiting")
        #expect(p.terminationReason == .uncaughtSignal)

        // Opened again: every order's facts are those of its stored events, and nothing waits.
        do {
            let s = try SQLiteStore(path: db, rollup: KPIFactsRollup())
            defer { s.close() }
            let stored = try s.stats().events
            // Part of the load: the batches of the blocks read before the input stopped.
            #expect(stored > 0 && stored < events.count, "\(stored) of \(events.count) stored")
            var checked = 0
            for order in Set(events.filter(\.isOrderEvent).map(\.subject)).sorted() {
                let mine = try s.trace(key: order)?.events.filter { $0.subject == order } ?? []
                let want = OrderFacts.fold(mine)[order]
                #expect(try s.facts(orderID: order) == want, "\(order)")
                if want != nil { checked += 1 }
            }
            #expect(checked > 0)
        }
        let c = try Connection(path: db, readOnly: true)
        let q = try c.prepare("SELECT count(*) FROM meta WHERE key IN ('facts_pending_from', 'facts_rollups_pending_from')")
        #expect(try q.step() && q.int64(0) == 0)
        q.reset()

        // The load run again to its end equals a load that was never killed (facts, search, KPIs).
        let again = try await CLIRun.run(["ingest", file.path, "--db", db])
        #expect(again.status == 0, "\(again.stderr)")
        let clean = temporaryDatabase()
        #expect(try await CLIRun.run(["ingest", file.path, "--db", clean]).status == 0)
        for args in [["search", "--limit", "5000", "--json"], ["kpi", "--from", "2026-11-01T00:00:00Z", "--to", "2026-12-31T00:00:00Z", "--by", "warehouse", "--json"]] {
            let a = try await CLIRun.run(args + ["--db", db]), b = try await CLIRun.run(args + ["--db", clean])
            #expect(a.status == 0 && a.stdout == b.stdout, "\(args[0]): \(a.stderr)")
        }
    }
}

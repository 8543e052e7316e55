import Foundation
import Testing
import WaybillModel
import WaybillTestSupport

/// `waybill ingest --sort`: an input far out of time order (a backfill that concatenates several
/// systems' exports, or a shuffled replay) is sorted by event time before it is stored. Sorting changes
/// nothing that Waybill computes: the same traces and KPI figures as loading it in its own order, the
/// same accepted, duplicate and rejected counts, and rejections still name their line in the file.
@Suite struct IngestSortTests {
    @Test func shuffledInputSortedOrNotGivesTheSameStore() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else {
            Issue.record("waybill binary not found at \(ServerProcess.binary.path)")
            return
        }
        let dbOn = temporaryDatabase(), dbOff = temporaryDatabase(), dbAuto = temporaryDatabase(), dbTimed = temporaryDatabase()
        let dir = URL(fileURLWithPath: dbOn).deletingLastPathComponent()
        let simulated = dir.appendingPathComponent("sim.ndjson")
        let sim = try await CLIRun.run(["simulate", "--orders", "400", "--days", "2", "--seed", "5",
                                        "--start", "2026-11-10T00:00:00Z", "--out", simulated.path])
        #expect(sim.status == 0, "\(sim.stderr)")
        let lines = try String(contentsOf: simulated, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count > 2_000)

        // Shuffled, with one line in 20 resent somewhere else, a bad line and a blank line.
        var rng = SplitMix64(seed: 16)
        var shuffled = lines.shuffled(using: &rng)
        for line in lines where rng.next() % 20 == 0 {
            shuffled.insert(line, at: Int(rng.next() % UInt64(shuffled.count + 1)))
        }
        let resent = shuffled.count - lines.count
        shuffled.insert(#"{"specversion":"1.0","source":"oms","type":"order.created","time":"2026-11-10T05:00:00Z"}"#, at: 700)
        shuffled.insert("", at: 40)
        let file = dir.appendingPathComponent("shuffled.ndjson")
        try (shuffled.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)

        // Runs of 64 KiB: the sort spills dozens of runs beside the store and merges them.
        var small = ProcessInfo.processInfo.environment
        small["WAYBILL_SORT_RUN_BYTES"] = "65536"
        let on = try await offThePool { [small] in
            try ProcessRun.run(ServerProcess.binary, ["ingest", file.path, "--db", dbOn, "--sort", "on", "--batch", "500", "--json"], environment: small)
        }
        let off = try await CLIRun.run(["ingest", file.path, "--db", dbOff, "--sort", "off", "--batch", "500", "--json"])
        let auto = try await CLIRun.run(["ingest", file.path, "--db", dbAuto, "--batch", "500"])
        for run in [on, off] {
            #expect(run.status == 1, "\(run.stderr)")
            #expect(run.json?["accepted"] == .number(Double(lines.count)), "\(run.stdout)")
            #expect(run.json?["duplicates"] == .number(Double(resent)))
            // Line 702: the bad line's index 700 after the blank line at 40, counted from 1.
            #expect(run.json?["rejected"]?.arrayValue?.map { $0["position"] } == [.string("line 702")], "\(run.stdout)")
            #expect(run.json?["rejected"]?.arrayValue?.first?["error"]?.stringValue?.hasPrefix("id: ") == true)
        }
        #expect(on.json?["sorted_lines"] == .number(Double(shuffled.count - 1)))  // every line but the blank one
        #expect(off.json?["sorted_lines"] == 0)
        // auto sees that the input is out of time order and says so.
        #expect(auto.status == 1)
        #expect(auto.stderr.contains("\(shuffled.count - 1) lines sorted by event time"), "\(auto.stderr)")
        #expect(auto.stderr.contains("line 702: id: "), "\(auto.stderr)")

        // Through a pipe, auto never sorts (a pipe may be a stream that never ends); on still does.
        // Stdin redirected from the file is a regular file, and auto sorts it.
        func viaShell(_ command: String) async throws -> ProcessRun {
            try await offThePool { try ProcessRun.run(URL(fileURLWithPath: "/bin/sh"), ["-c", command]) }
        }
        let bin = ServerProcess.binary.path
        let piped = try await viaShell("cat '\(file.path)' | '\(bin)' ingest - --db '\(temporaryDatabase())' --json")
        #expect(piped.json?["sorted_lines"] == 0, "\(piped.stdout) \(piped.stderr)")
        #expect(piped.json?["accepted"] == .number(Double(lines.count)))
        let pipedOn = try await viaShell("cat '\(file.path)' | '\(bin)' ingest - --db '\(temporaryDatabase())' --json --sort on")
        #expect(pipedOn.json?["sorted_lines"] == .number(Double(shuffled.count - 1)), "\(pipedOn.stdout)")
        let redirected = try await viaShell("'\(bin)' ingest - --db '\(temporaryDatabase())' --json < '\(file.path)'")
        #expect(redirected.json?["sorted_lines"] == .number(Double(shuffled.count - 1)), "\(redirected.stdout)")

        // The simulator's output arrives in time order: auto loads it as it is.
        let timed = try await CLIRun.run(["ingest", simulated.path, "--db", dbTimed, "--json"])
        #expect(timed.json?["sorted_lines"] == 0, "\(timed.stdout)")
        #expect(timed.json?["accepted"] == .number(Double(lines.count)))

        // The same KPI report, by warehouse, and the same traces, from all four stores.
        func kpi(_ db: String) async throws -> String {
            try await CLIRun.run(["kpi", "--db", db, "--from", "2026-11-09T00:00:00Z", "--to", "2026-11-20T00:00:00Z",
                                  "--by", "warehouse", "--json"]).stdout
        }
        let report = try await kpi(dbOff)
        #expect(report.contains("fill_rate"))
        for db in [dbOn, dbAuto, dbTimed] { #expect(try await kpi(db) == report) }
        let orders = Set(lines.compactMap { (try? JSONParser.parse($0))?["subject"]?.stringValue }).sorted()
        #expect(orders.count >= 400)
        for order in orders.enumerated().filter({ $0.offset % 40 == 0 }).map(\.element) {
            let want = try await CLIRun.run(["trace", order, "--db", dbOff, "--json"]).stdout
            #expect(want.contains("\"events\""))
            for db in [dbOn, dbTimed] {
                #expect(try await CLIRun.run(["trace", order, "--db", db, "--json"]).stdout == want, "\(order)")
            }
        }
    }

    @Test func aSortThatCannotWriteItsRunsSaysWhereAndHowToAvoidIt() async throws {
        let dir = URL(fileURLWithPath: temporaryDatabase()).deletingLastPathComponent()
        let file = dir.appendingPathComponent("late.ndjson")
        let lines = (0..<200).map { i in
            #"{"specversion":"1.0","id":"e\#(i)","source":"oms","type":"order.note","time":"2026-11-\#(10 + (i * 7) % 11)T00:00:00Z","subject":"ORD-\#(i)"}"#
        }
        try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        var env = ProcessInfo.processInfo.environment
        env["WAYBILL_SORT_RUN_BYTES"] = "1000"
        env["TMPDIR"] = dir.appendingPathComponent("missing").path
        let r = try await offThePool { [env] in
            try ProcessRun.run(ServerProcess.binary, ["ingest", file.path, "--url", "http://127.0.0.1:9", "--sort", "on"], environment: env)
        }
        #expect(r.status == 1)
        #expect(r.stderr.contains("late.ndjson: sorting by event time: cannot make a sort run in \(dir.appendingPathComponent("missing").path)"), "\(r.stderr)")
        #expect(r.stderr.contains("--sort off"), "\(r.stderr)")
    }

    @Test func sortNeedsAKnownMode() async throws {
        let r = try await CLIRun.run(["ingest", "-", "--db", temporaryDatabase(), "--sort", "sometimes"], stdin: "")
        #expect(r.status != 0)
        #expect(r.stderr.contains("--sort"), "\(r.stderr)")
    }
}

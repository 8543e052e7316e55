import ArgumentParser
import Foundation
import WaybillKPI
import WaybillModel
import WaybillServer
import WaybillServices
import WaybillSQLite
import WaybillStore

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run the embedded orchestration and allocation services against a synthetic workload and emit their events.",
        discussion: """
            A virtual clock makes weeks of history in seconds; the same --seed gives the same bytes.
            Faults: --faults 'erp-latency=2s@10:00-11:00,warehouse-outage=DC-EAST@2026-11-20T08:00/4h,short-pick=0.05,duplicate=0.03,reorder=0.1,late-arrival=0.02'
            Examples:
              waybill simulate --orders 100000 --days 7 --out week.ndjson
              waybill simulate --orders 5000 --url http://127.0.0.1:4318
            """)

    @Option(help: "Orders to simulate.") var orders = 10_000
    @Option(help: "Random seed: the same seed gives the same events.") var seed: UInt64 = 1
    @Option(help: "Simulated days over which the orders arrive.") var days: Double = 7
    @Option(help: "Fault injection, comma-separated (see above).") var faults: String?
    @Option(parsing: .unconditional, help: "Virtual start time (RFC 3339 or relative; default: days + 7 days ago, so everything has happened).") var start: String?
    @Option(help: "Write the events to this NDJSON file.") var out: String?
    @Option(help: "Also write the spans (one JSON object a line) to this file; with --out only.") var spansOut: String?
    @Option(help: "Send the events to a running server.") var url: String?
    @Option(help: "With --url: a bearer token of scope ingest (default: $WAYBILL_TOKEN).") var token: String?
    @Option(help: "Write the events into this embedded store.") var db: String?
    @OptionGroup var collectors: CollectorsConfigOptions

    func validate() throws {
        if [out, url, db].compactMap({ $0 }).count != 1 { throw ValidationError("give exactly one of --out FILE, --url URL or --db PATH") }
        if orders < 1 { throw ValidationError("--orders: must be at least 1") }
        if !(days > 0) { throw ValidationError("--days: must be positive") }
        if spansOut != nil && out == nil { throw ValidationError("--spans-out goes with --out") }
    }

    func run() async throws {
        let now = currentMicros()
        var startTime = now - Micros((days + 7) * 86_400_000_000)
        if let s = start {
            guard let t = TimeText.parse(s, now: now) else { throw CLIError("--start: must be RFC 3339 or relative like -14d") }
            startTime = t
        }
        let plan: FaultPlan
        do { plan = try FaultPlan.parse(faults ?? "", warehouses: FulfilmentNetwork.standard.warehouses.map(\.id)) } catch {
            throw CLIError("--faults: \(error)")
        }
        let config = SimulatorConfig.batch(orders: orders, seed: seed, days: days, start: startTime, faults: plan)
        let began = Date()
        if let out {
            let sink = try NDJSONFileSink(path: out, spansPath: spansOut)
            let sim = try Simulator(config, sink: sink)
            sim.run()
            try sink.close()
            printErr("\(sim.stats)")
            printErr("wrote \(sink.eventsWritten) events to \(out) in \(String(format: "%.1f", Date().timeIntervalSince(began)))s")
            return
        }
        // Spans are stored in-process with --db; --url sends events only until the server speaks OTLP.
        let sink = StoreEventSink(keepSpans: db != nil)
        let sim = try Simulator(config, sink: sink)
        let storeOptions = try collectors.storeOptions()
        let store: SQLiteStore? = try db.map { try SQLiteStore(path: $0, options: storeOptions, rollup: KPIFactsRollup()) }
        defer { store?.close() }
        let remote = try url.map { try RemoteSink(url: $0, token: token ?? StoreOptions.environmentToken) }
        var sent = AppendResult()
        var t = startTime
        repeat {
            t += 3_600_000_000
            sim.advance(to: t)
            if let store {
                try await sink.flush(to: store)
            } else if let remote {
                let body = sink.takeText()
                if !body.isEmpty { sent = sent + (try await remote.send(ndjson: body)) }
            }
        } while !sim.isFinished
        if store != nil { sent = sink.written }
        printErr("\(sim.stats)")
        if store != nil { printErr("stored \(sink.spansWritten.accepted) spans") }
        printErr("stored \(sent.accepted) events (\(sent.duplicates) duplicates) in \(String(format: "%.1f", Date().timeIntervalSince(began)))s")
    }
}

import Foundation
import Testing
import WaybillStoreConformance
import WaybillTestSupport
@testable import WaybillClickHouse

/// Every SQL statement Waybill sends to ClickHouse must also be valid on a current ClickHouse, not only on
/// Debian's 18.16 that the other tests run: the statements are recorded (`StatementLog`) while the storage
/// conformance suite runs against the test cluster, on one node and on the two-shard cluster, and then
/// run in chDB (ClickHouse as a Python library, from PyPI): the schema first (the Distributed tables
/// left out, since chDB has no cluster; their reads and writes then go to the same-named local tables), then
/// every other statement, inserts with a row made from the table's columns. Any syntax or semantic error
/// fails the test. Without PyPI the test says SKIPPED.
@Suite(.serialized) struct ClickHouseStatementsTests {
    @Test func everyStatementRunsOnCurrentClickHouse() async throws {
        let name = "ClickHouseStatementsTests.everyStatementRunsOnCurrentClickHouse"
        guard let cluster = await ClickHouseCluster.shared(test: name) else { return }
        guard let venv = PythonVenv.make("chdb", packages: ["chdb"], test: name) else { return }

        // 1. Record what the engine sends, on one node and on the cluster.
        StatementLog.record(true)
        var failedChecks: [String] = []
        let started = Date()
        for clustered in [false, true] {
            // On the cluster only what differs there: the DDL of the local and Distributed tables and retention on each node.
            for check in StoreConformance.checks where !clustered || check.name.contains("retention") {
                let db = ClickHouseCluster.freshDatabase(clustered ? "stmt2" : "stmt1")
                let url = try ClickHouseURL(parsing: cluster.url(database: db, cluster: clustered))
                do {
                    try await TestThreads.run {
                        try await check.run {
                            StoreConformance.Storage(open: { rollup in try ClickHouseStore(url: url, rollup: rollup) },
                                                    holdWrites: { store, held in (store as! ClickHouseStore).holdWrites(held) })
                        }
                    }
                } catch {
                    // The conformance suite of the engine reports these; here only the statements count.
                    failedChecks.append("\(clustered ? "cluster" : "one node"): \(check.name): \(error)")
                }
                for node in 0..<(clustered ? cluster.nodes.count : 1) { _ = try? await cluster.query("DROP DATABASE IF EXISTS \(db)", node: node) }
            }
        }
        let recorded = StatementLog.statements
        StatementLog.record(false)
        print("ClickHouseStatementsTests: recorded \(recorded.count) statements in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        if !failedChecks.isEmpty { print("note: \(failedChecks.count) conformance checks failed while recording: \(failedChecks.prefix(3))") }
        #expect(recorded.contains { $0.hasPrefix("CREATE TABLE") })
        #expect(recorded.contains { $0.hasPrefix("INSERT INTO") })
        #expect(recorded.contains { $0.hasPrefix("SELECT") })

        // 2. One database name in chDB; the Distributed tables' DDL left out; one statement of each shape
        // (the same text but for its literal values).
        let databasePattern = try Regex("stmt[12]_[0-9]+_[0-9a-f]{12}")
        // The log is the process's: suites running beside this one record statements on their own
        // databases (fresh names of the same form), which do not exist here; they are theirs to check.
        let anyTestDatabase = try Regex("[a-z][a-z0-9]*_[0-9]+_[0-9a-f]{12}")
        var statements: [String] = []
        var seen = Set<String>()
        for s in recorded {
            if s.matches(of: anyTestDatabase).contains(where: { !s[$0.range].hasPrefix("stmt") }) { continue }
            let text = s.replacing(databasePattern) { _ in "waybill" }
            if text.contains("ENGINE = Distributed") { continue }
            if seen.insert(Self.shape(text)).inserted { statements.append(text) }
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-chdb-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("statements.json")
        try JSONSerialization.data(withJSONObject: statements).write(to: input)

        // 3. Run them in chDB.
        let (status, output) = try venv.script(Self.chdbScript, [input.path, dir.appendingPathComponent("session").path])
        #expect(status == 0, "chDB run failed: \(output.suffix(2000))")
        let report = output.split(separator: "\n").last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any]
        let errors = report?["errors"] as? [[String: String]] ?? []
        let version = report?["version"] as? String ?? "?"
        let ran = (report?["ran"] as? NSNumber)?.intValue ?? 0
        print("chDB \(version): \(ran) of \(statements.count) distinct statements ran, \(errors.count) refused")
        #expect(ran == statements.count, "\(output.suffix(1000))")
        for e in errors.prefix(30) {
            Issue.record("refused by ClickHouse \(version): \(e["error"] ?? "")\n  in: \(e["statement"]?.prefix(600) ?? "")")
        }
    }

    /// A statement with its literals replaced: strings and numbers by `?`, and lists of them by one `?`.
    static func shape(_ sql: String) -> String {
        var out = ""
        var i = sql.startIndex
        while i < sql.endIndex {
            let c = sql[i]
            if c == "'" {
                var j = sql.index(after: i)
                while j < sql.endIndex {
                    if sql[j] == "\\" { j = sql.index(j, offsetBy: 2, limitedBy: sql.endIndex) ?? sql.endIndex; continue }
                    if sql[j] == "'" { break }
                    j = sql.index(after: j)
                }
                out += "?"
                i = j < sql.endIndex ? sql.index(after: j) : j
            } else if c.isNumber, !(out.last.map { $0.isLetter || $0.isNumber || $0 == "_" } ?? false) {
                var j = i
                while j < sql.endIndex, sql[j].isNumber || sql[j] == "." || sql[j] == "e" || sql[j] == "-" { j = sql.index(after: j) }
                out += "?"
                i = j
            } else {
                out.append(c)
                i = sql.index(after: i)
            }
        }
        while out.contains("?,?") || out.contains("?, ?") {
            out = out.replacingOccurrences(of: "?,?", with: "?").replacingOccurrences(of: "?, ?", with: "?")
        }
        return out
    }

    /// Runs each statement in one chDB session. `FORMAT JSONEachRow` inserts get one row built from
    /// the table's columns (DESCRIBE TABLE); every other statement runs as it is. Prints one JSON line.
    static let chdbScript = #"""
        import json, re, sys
        import chdb
        from chdb import session

        statements = json.load(open(sys.argv[1]))
        s = session.Session(sys.argv[2])
        version = s.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
        s.query("CREATE DATABASE IF NOT EXISTS waybill")
        s.query("USE waybill")

        def sample(t):
            t = t.strip()
            m = re.match(r"^(Nullable|LowCardinality)\((.*)\)$", t)
            if m:
                return None if m.group(1) == "Nullable" else sample(m.group(2))
            if t.startswith("Array("):
                return [sample(t[6:-1])]
            if t.startswith("Map("):
                return {}
            if re.match(r"^U?Int\d+$", t):
                return 1
            if t.startswith("Float") or t.startswith("Decimal"):
                return 1.5
            if t == "Date":
                return "2026-11-20"
            if t.startswith("DateTime"):
                return "2026-11-20 08:00:00"
            if t == "UUID":
                return "00000000-0000-0000-0000-000000000001"
            return "x"

        errors, ran = [], 0
        for text in statements:
            ran += 1
            try:
                m = re.match(r"^\s*INSERT INTO\s+([\w.]+)\s*(\(([^)]*)\))?\s*(SETTINGS .*?)?\s*FORMAT\s+JSONEachRow\s*$", text, re.S)
                if m:
                    table = m.group(1)
                    described = s.query("DESCRIBE TABLE " + table, "JSONEachRow").bytes().decode()
                    types = {}
                    for line in described.splitlines():
                        if line.strip():
                            c = json.loads(line)
                            types[c["name"]] = c["type"]
                    names = [n.strip().strip("`") for n in m.group(3).split(",")] if m.group(3) else list(types)
                    unknown = [n for n in names if n not in types]
                    if unknown:
                        raise Exception("no such columns in %s: %s" % (table, unknown))
                    row = {n: sample(types[n]) for n in names}
                    s.query(text + "\n" + json.dumps(row))
                else:
                    s.query(text)
            except Exception as e:
                errors.append({"statement": text, "error": str(e)[:800]})
        print(json.dumps({"version": version, "ran": ran, "errors": errors}))
        """#
}

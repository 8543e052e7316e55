import Foundation
import Testing
import WaybillStoreConformance
import WaybillTestSupport
@testable import WaybillClickHouse

/// Every SQL statement Waybill sends to ClickHouse must also be valid on a current ClickHouse, not only on
/// Debian's 18.16 that the tests run: a suite with this trait records the statements (`StatementLog`) while
/// its tests run (the storage conformance suite, on one node and on the two-shard cluster), and at its end
/// runs each distinct statement shape of its own databases (named `PREFIX...`) in chDB (ClickHouse as a
/// Python library, from PyPI): the schema first (the Distributed tables left out, since chDB has no
/// cluster; their reads and writes then go to the same-named local tables), then every other statement,
/// inserts with a row made from the table's columns (a RowBinary insert as JSONEachRow, same columns). Any syntax or semantic error is an issue of the
/// suite. Without PyPI it says SKIPPED. (The conformance run is the recording: the checks are not run a
/// second time for it.)
struct ChDBStatementCheck: SuiteTrait, TestScoping {
    let databasePrefix: String
    var isRecursive: Bool { false }

    func scopeProvider(for test: Test, testCase: Test.Case?) -> ChDBStatementCheck? { test.isSuite ? self : nil }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        StatementLog.record(true)
        do { try await function() } catch {
            StatementLog.record(false)
            throw error
        }
        let recorded = StatementLog.statements
        StatementLog.record(false)
        try await ClickHouseStatementsTests.runInChDB(recorded, databasePrefix: databasePrefix, test: "\(test.name) (chDB statements)")
    }
}

enum ClickHouseStatementsTests {
    static func runInChDB(_ recorded: [String], databasePrefix: String, test name: String) async throws {
        // The log is the process's: suites running beside this one record statements on their own
        // databases (fresh names of the same form), which do not exist here; they are theirs to check.
        let databasePattern = try Regex("\(databasePrefix)[12]_[0-9]+_[0-9a-f]{12}")
        let anyTestDatabase = try Regex("[a-z][a-z0-9]*_[0-9]+_[0-9a-f]{12}")
        let own = recorded.filter { s in s.matches(of: anyTestDatabase).allSatisfy { s[$0.range].hasPrefix(databasePrefix) } }
        guard own.contains(where: { $0.contains(databasePrefix) }) else {
            print("SKIPPED \(name): no statements were recorded (ClickHouse tests skipped)")
            return
        }
        guard let venv = await PythonVenv.make("chdb", packages: ["chdb"], test: name) else { return }
        #expect(own.contains { $0.hasPrefix("CREATE TABLE") })
        #expect(own.contains { $0.hasPrefix("INSERT INTO") })
        #expect(own.contains { $0.hasPrefix("SELECT") })

        // One database name in chDB; the Distributed tables' DDL left out; one statement of each shape
        // (the same text but for its literal values).
        var statements: [String] = []
        var seen = Set<String>()
        for s in own {
            let text = s.replacing(databasePattern) { _ in "waybill" }
            if text.contains("ENGINE = Distributed") { continue }
            if seen.insert(Self.shape(text)).inserted { statements.append(text) }
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-chdb-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("statements.json")
        try JSONSerialization.data(withJSONObject: statements).write(to: input)

        let (status, output) = try await venv.script(Self.chdbScript, [input.path, dir.appendingPathComponent("session").path])
        #expect(status == 0, "chDB run failed: \(output.suffix(2000))")
        let report = output.split(separator: "\n").last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any]
        let errors = report?["errors"] as? [[String: String]] ?? []
        let version = report?["version"] as? String ?? "?"
        let ran = (report?["ran"] as? NSNumber)?.intValue ?? 0
        print("chDB \(version): \(ran) of \(statements.count) distinct statements ran (of \(own.count) recorded), \(errors.count) refused")
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
        # The external tables some reads carry beside them (ExternalKeys: `IN _keys`; the append's read of
        # stored ids also `IN _ids`, an ExternalTable).
        s.query("CREATE TABLE IF NOT EXISTS _keys (key String) ENGINE = Memory")
        s.query("CREATE TABLE IF NOT EXISTS _ids (key String) ENGINE = Memory")

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
                m = re.match(r"^\s*INSERT INTO\s+([\w.]+)\s*(\(([^)]*)\))?\s*(SETTINGS .*?)?\s*FORMAT\s+(JSONEachRow|RowBinary)\s*$", text, re.S)
                if m:
                    # A RowBinary insert runs as JSONEachRow over the same column list (its bytes are
                    # checked against the real server by the suites that write and read them back).
                    text = re.sub(r"FORMAT\s+RowBinary\s*$", "FORMAT JSONEachRow", text)
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

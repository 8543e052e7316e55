import Foundation
import Testing
import WaybillModel
import WaybillTestSupport

/// Alert rules are reloaded by restarting `waybill serve`; the audit log records each start whose rules
/// changed (who, how many rules and hooks, which files, a digest), once.
@Suite(.serialized) struct RulesAuditTests {
    static func rules(threshold: Double) -> String {
        """
        rules:
          - name: FillRateLow
            kpi: fill_rate
            op: "<"
            threshold: \(threshold)
            window: 6h
            severity: ticket
        """
    }

    func loads(_ db: String) async throws -> [JSONValue] {
        let r = try await CLIRun.run(["audit", "--db", db, "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        return (r.json?["entries"]?.arrayValue ?? []).filter { $0["action"]?.stringValue == "rules.load" }
    }

    @Test func aStartWithChangedRulesIsAuditedOnce() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else { Issue.record("waybill binary missing"); return }
        let db = temporaryDatabase()
        let dir = (db as NSString).deletingLastPathComponent + "/rules-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.rules(threshold: 0.9).write(toFile: dir + "/kpi.yaml", atomically: true, encoding: .utf8)

        var server = try await ServerProcess.start(db: db, extra: ["--config", dir])
        server.stop()
        var entries = try await loads(db)
        #expect(entries.count == 1)
        let first = entries.first?["detail"]?.stringValue ?? ""
        #expect(first.hasPrefix("1 rules, 0 hooks from \(dir) (sha256 "), "\(first)")
        #expect(entries.first?["actor"]?.stringValue?.hasPrefix("local:") == true)

        // The same rules again: nothing new.
        server = try await ServerProcess.start(db: db, extra: ["--config", dir])
        server.stop()
        #expect(try await loads(db).count == 1)

        // A changed threshold is a reload: recorded, newest first, with another digest.
        try Self.rules(threshold: 0.8).write(toFile: dir + "/kpi.yaml", atomically: true, encoding: .utf8)
        server = try await ServerProcess.start(db: db, extra: ["--config", dir])
        server.stop()
        entries = try await loads(db)
        #expect(entries.count == 2)
        #expect(entries.first?["detail"]?.stringValue != first)
        #expect(entries.last?["detail"]?.stringValue == first)
    }
}

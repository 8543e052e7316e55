import Foundation
import Testing
import WaybillModel
@testable import WaybillAlerts

@Suite struct AlertConfigTests {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test func shippedExamplesLoad() throws {
        let c = try AlertConfig.load(paths: [Self.repoRoot + "/queries/alerts"])
        #expect(c.rules.count >= 5)
        #expect(c.rules.contains { if case .sla(let s) = $0.condition { return s.after == .accepted && s.expect == .allocated && s.within == 900_000_000 }; return false })
        #expect(c.rules.contains { if case .kpi(let k) = $0.condition { return k.by == .warehouse && k.op == .gt && k.threshold == 900 }; return false })
        #expect(c.rules.contains { if case .spans(let s) = $0.condition { return s.service == "erp" && s.threshold == 0.05 }; return false })
        #expect(c.hooks.first?.secretEnv == "WAYBILL_HOOK_SECRET")
        #expect(c.evaluationInterval == 15_000_000)
    }

    @Test func specExampleParses() throws {
        let yaml = """
            rules:
              - name: AllocationDelayHigh
                kpi: allocation_delay.p95_s
                op: ">"
                threshold: 900
                window: 1h
                by: warehouse
                for: 5m
                severity: page
                annotations: {summary: "p95 allocation delay above 15m in {{warehouse}}"}
              - name: OrderNotAllocated
                after: order.accepted
                expect: order.allocated
                within: 15m
                severity: ticket
              - name: ErpErrorRate
                spans: {service: erp}
                error_rate: "> 0.05"
                window: 5m
                severity: page
            hooks:
              - name: ops
                url: http://127.0.0.1:9000/hook
                secret_env: WAYBILL_HOOK_SECRET
                format: waybill
                send_resolved: true
            alertmanager: http://127.0.0.1:9093
            evaluation_interval: 15s
            """
        let c = try AlertConfig.parse(yaml: yaml, file: "spec.yaml")
        #expect(c.rules.map(\.name) == ["AllocationDelayHigh", "OrderNotAllocated", "ErpErrorRate"])
        #expect(c.rules[0].holdFor == 300_000_000)
        #expect(c.alertmanager == "http://127.0.0.1:9093")
        #expect(c.hooks[0].format == .waybill)
    }

    /// Each bad file gets an error naming the file, the rule and the field.
    @Test(arguments: [
        ("rules:\n  - name: X\n    kpi: fill_rate\n    op: '>'\n    threshold: 1\n    window: soon\n", "'X'", "window:"),
        ("rules:\n  - name: X\n    kpi: nope\n    op: '>'\n    threshold: 1\n    window: 1h\n", "'X'", "kpi:"),
        ("rules:\n  - name: X\n    after: order.allocated\n    expect: order.accepted\n    within: 1h\n", "'X'", "expect:"),
        ("rules:\n  - name: X\n    after: order.accepted\n    expect: order.cancelled\n    within: 1h\n", "'X'", "expect:"),
        ("rules:\n  - name: X\n    after: order.accepted\n    expect: order.allocated\n", "'X'", "within:"),
        ("rules:\n  - name: X\n    spans: {service: erp}\n    error_rate: lots\n    window: 5m\n", "'X'", "error_rate:"),
        ("rules:\n  - name: X\n    after: order.accepted\n    expect: order.allocated\n    within: 1h\n    threshhold: 3\n", "'X'", "threshhold:"),
        ("rules:\n  - name: X\n    severity: page\n", "'X'", "kpi:"),
        ("rules:\n  - name: X\n    kpi: fill_rate\n    op: '=='\n    threshold: 1\n    window: 1h\n", "'X'", "op:"),
        ("rules:\n  - name: X\n    kpi: fill_rate\n    op: '<'\n    threshold: 1\n    window: 1h\n    by: planet\n", "'X'", "by:"),
        ("hooks:\n  - name: h\n    url: ftp://x\n", "'h'", "url:"),
        ("hooks:\n  - name: h\n    url: http://x/\n    secret_env: 'my secret'\n", "'h'", "secret_env:"),
        ("rules: [1, 2\n", "bad.yaml", "yaml:"),
        ("evaluation_interval: 10ms\n", "bad.yaml", "evaluation_interval:"),
    ])
    func badFilesNameFileRuleAndField(yaml: String, context: String, field: String) {
        do {
            _ = try AlertConfig.parse(yaml: yaml, file: "bad.yaml")
            Issue.record("accepted: \(yaml)")
        } catch let e as AlertConfigError {
            let text = e.description
            #expect(text.hasPrefix("bad.yaml"), "\(text)")
            #expect(text.contains(context), "\(text)")
            #expect(text.contains(field), "\(text)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func duplicateRuleNamesAcrossFilesAreRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-alerts-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rule = "rules:\n  - name: Late\n    after: order.accepted\n    expect: order.allocated\n    within: 1h\n"
        try rule.write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        try rule.write(toFile: dir + "/b.yml", atomically: true, encoding: .utf8)
        #expect(throws: AlertConfigError.self) { try AlertConfig.load(paths: [dir]) }
        #expect(throws: AlertConfigError.self) { try AlertConfig.load(paths: [dir + "/missing.yaml"]) }
    }
}

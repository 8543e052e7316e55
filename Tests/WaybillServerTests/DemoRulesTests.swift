import Foundation
import Testing
import WaybillAlerts
import WaybillServer
import WaybillTestSupport

/// The demo runs the shipped alert rules, not a copy of them.
@Suite struct DemoRulesTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test func theDemoRunsTheShippedRulesWithoutHooks() throws {
        let shipped = try AlertConfig.load(paths: [Self.repo + "/queries/alerts"])
        let demo = try DemoService.shippedAlertRules()
        #expect(demo.rules.count == shipped.rules.count)
        #expect(demo.rules.map(\.name) == shipped.rules.map(\.name))
        // The same rules, read from the bundled files rather than from the repository's.
        let unfiled = { (c: AlertConfig) in c.rules.map { r in var r = r; r.file = URL(fileURLWithPath: r.file).lastPathComponent; return r } }
        #expect(unfiled(demo) == unfiled(shipped))
        #expect(demo.rules.allSatisfy { !$0.file.hasPrefix(Self.repo + "/queries/") }, "read from the module's bundle")
        #expect(demo.evaluationInterval == shipped.evaluationInterval)
        #expect(!shipped.hooks.isEmpty, "the shipped rules name a hook, which the demo leaves out")
        #expect(demo.hooks.isEmpty && demo.alertmanager == nil)
    }
}

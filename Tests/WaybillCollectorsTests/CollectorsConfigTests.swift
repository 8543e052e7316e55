import Foundation
import Testing
import WaybillCollectors
import WaybillModel

struct CollectorsConfigTests {
    @Test func theShippedFileLoadsAndSpellsOutTheDefaults() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("collectors/waybill-collectors.yaml").path
        let config = try CollectorsConfig.load(path: path)
        #expect(config.correlationKeys == SpanCorrelation.defaultKeys)
    }

    @Test func customKeysReplaceTheDefaultsInOrder() throws {
        let c = try CollectorsConfig.parse("spans:\n  correlation_keys:\n    - tenant.order_ref\n    - order.id\n", file: "c.yaml")
        #expect(c.correlationKeys == ["tenant.order_ref", "order.id"])
    }

    @Test(arguments: ["", "# only a comment\n", "spans: {}\n"])
    func anEmptyConfigKeepsTheDefaults(_ text: String) throws {
        #expect(try CollectorsConfig.parse(text, file: "c.yaml") == CollectorsConfig())
    }

    @Test(arguments: [
        ("spanz:\n  correlation_keys: [a]\n", "c.yaml:1: spanz: unknown field (known: spans)"),
        ("spans:\n  correlation_key: [a]\n", "c.yaml:2: spans.correlation_key: unknown field (known: correlation_keys)"),
        ("spans:\n  correlation_keys: order.id\n", "c.yaml:2: spans.correlation_keys: must be a list of attribute names, such as [order.id]"),
        ("spans:\n  correlation_keys: []\n", "c.yaml:2: spans.correlation_keys: must list at least one attribute name (omit the field for the defaults)"),
        ("spans:\n  correlation_keys:\n    - a\n    - 7\n", "c.yaml:4: spans.correlation_keys[1]: must be a string (an attribute name); quote it if it looks like a number or boolean"),
        ("spans:\n  correlation_keys: [a, {b: c}]\n", "c.yaml:2: spans.correlation_keys[1]: must be a string (an attribute name); quote it if it looks like a number or boolean"),
        ("spans:\n  correlation_keys: [a, a]\n", "c.yaml:2: spans.correlation_keys[1]: `a` is listed twice"),
        ("spans:\n  correlation_keys: ['']\n", "c.yaml:2: spans.correlation_keys[0]: must be a non-empty attribute name without surrounding spaces"),
        ("spans: [a]\n", "c.yaml:1: spans: must be a mapping with the field `correlation_keys`"),
        ("- spans\n", "c.yaml:1: must be a mapping with the field `spans`"),
    ])
    func badConfigsNameFileLineAndField(_ text: String, _ message: String) {
        #expect {
            try CollectorsConfig.parse(text, file: "c.yaml")
        } throws: { ($0 as? CollectorsConfig.LoadError)?.description == message }
    }

    @Test func quotedNumbersAreNames() throws {
        #expect(try CollectorsConfig.parse("spans:\n  correlation_keys: ['7']\n", file: "c.yaml").correlationKeys == ["7"])
    }

    @Test func unreadableFilesAndInvalidYAMLAreErrors() throws {
        let missing = "/nonexistent/waybill-collectors.yaml"
        #expect(throws: CollectorsConfig.LoadError(file: missing, field: "", line: nil, message: "cannot read the file")) {
            try CollectorsConfig.load(path: missing)
        }
        #expect {
            try CollectorsConfig.parse("spans: [a\n", file: "c.yaml")
        } throws: { ($0 as? CollectorsConfig.LoadError)?.description.hasPrefix("c.yaml: not valid YAML: ") == true }
    }
}

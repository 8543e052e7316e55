import Foundation
import WaybillModel
import Yams

/// Settings of the collectors, from `collectors/waybill-collectors.yaml` (see collectors/README.md):
///
/// ```yaml
/// spans:
///   correlation_keys: [order.id, order_id, waybill.correlation_id]
/// ```
///
/// Every field is optional; a missing one keeps its default. An unknown field, a wrong type or an
/// empty value is an error that names the file, the field and the line.
public struct CollectorsConfig: Sendable, Equatable {
    /// Span attributes (span first, then resource) whose value joins a span to an order (events.md section 4).
    public var correlationKeys: [String] = SpanCorrelation.defaultKeys

    public init(correlationKeys: [String] = SpanCorrelation.defaultKeys) {
        self.correlationKeys = correlationKeys
    }

    public struct LoadError: Error, Sendable, Equatable, CustomStringConvertible {
        public let file: String
        /// The field path, such as `spans.correlation_keys[1]`; empty for the whole document.
        public let field: String
        public let line: Int?
        public let message: String

        public init(file: String, field: String, line: Int?, message: String) {
            self.file = file
            self.field = field
            self.line = line
            self.message = message
        }

        public var description: String {
            let at = line.map { "\(file):\($0)" } ?? file
            return field.isEmpty ? "\(at): \(message)" : "\(at): \(field): \(message)"
        }
    }

    /// Reads and validates a config file.
    public static func load(path: String) throws(LoadError) -> CollectorsConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LoadError(file: path, field: "", line: nil, message: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw LoadError(file: path, field: "", line: nil, message: "not UTF-8 text")
        }
        return try parse(text, file: path)
    }

    /// Validates the YAML text of a config; `file` names it in errors.
    public static func parse(_ text: String, file: String) throws(LoadError) -> CollectorsConfig {
        func tagged(_ node: Node, _ tag: Tag.Name) -> Bool { node.tag.rawValue == tag.rawValue }
        func fail(_ field: String, _ node: Node?, _ message: String) -> LoadError {
            LoadError(file: file, field: field, line: node?.mark?.line, message: message)
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw LoadError(file: file, field: "", line: nil, message: "not valid YAML: \(error)")
        }
        var config = CollectorsConfig()
        // An empty file (or only comments) sets nothing.
        guard let root, !tagged(root, .null) else { return config }
        guard case .mapping(let top) = root else { throw fail("", root, "must be a mapping with the field `spans`") }
        for (k, v) in top {
            guard let key = k.string, tagged(k, .str) else { throw fail("", k, "field names must be strings") }
            switch key {
            case "spans":
                guard case .mapping(let spans) = v else { throw fail("spans", v, "must be a mapping with the field `correlation_keys`") }
                for (sk, sv) in spans {
                    guard let name = sk.string, tagged(sk, .str) else { throw fail("spans", sk, "field names must be strings") }
                    switch name {
                    case "correlation_keys":
                        let field = "spans.correlation_keys"
                        guard case .sequence(let seq) = sv else { throw fail(field, sv, "must be a list of attribute names, such as [order.id]") }
                        var keys: [String] = []
                        for (i, item) in seq.enumerated() {
                            guard case .scalar = item, tagged(item, .str), let s = item.string else {
                                throw fail("\(field)[\(i)]", item, "must be a string (an attribute name); quote it if it looks like a number or boolean")
                            }
                            let trimmed = s.trimmingCharacters(in: .whitespaces)
                            guard !trimmed.isEmpty, trimmed == s else { throw fail("\(field)[\(i)]", item, "must be a non-empty attribute name without surrounding spaces") }
                            guard !keys.contains(s) else { throw fail("\(field)[\(i)]", item, "`\(s)` is listed twice") }
                            keys.append(s)
                        }
                        guard !keys.isEmpty else { throw fail(field, sv, "must list at least one attribute name (omit the field for the defaults)") }
                        config.correlationKeys = keys
                    default:
                        throw fail("spans.\(name)", sk, "unknown field (known: correlation_keys)")
                    }
                }
            default:
                throw fail(key, k, "unknown field (known: spans)")
            }
        }
        return config
    }
}

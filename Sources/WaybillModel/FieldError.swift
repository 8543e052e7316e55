/// Bad input, named by the field at fault and the rule it broke: `time: must be an RFC 3339 date-time`.
/// Every layer reports bad input this way (events, query parameters, KPI requests), so clients see one shape.
public struct FieldError: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let rule: String
    public init(field: String, rule: String) {
        self.field = field
        self.rule = rule
    }
    public var description: String { "\(field): \(rule)" }
}

/// An event that breaks events.md.
public typealias EventValidationError = FieldError

public enum HTMLText {
    /// Escapes text for HTML element content and quoted attribute values.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

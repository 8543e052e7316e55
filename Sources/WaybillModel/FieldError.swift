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

import Synchronization

/// A value shared by the copies of a struct and replaced in place (a server's rules or delivery worker
/// after a reload): read and set under a lock.
public final class SharedValue<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    public init(_ v: Value) { value = Mutex(v) }
    public var current: Value { value.withLock { $0 } }
    public func set(_ v: Value) { value.withLock { $0 = v } }
}

import Foundation
import WaybillModel

/// Durations in microseconds, for tests.
public let second: Micros = 1_000_000
public let minute: Micros = 60 * second
public let hour: Micros = 60 * minute
public let day: Micros = 24 * hour

/// An RFC 3339 time in microseconds; traps on a typo, which is a bug in the test.
public func t(_ s: String) -> Micros {
    guard let v = RFC3339.parse(s) else { preconditionFailure("not an RFC 3339 time: \(s)") }
    return v
}

/// A path for a new database file in a fresh temporary directory.
public func temporaryDatabase(_ name: String = "waybill.db") -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-test-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

/// One CloudEvent as JSON text, every string escaped (keys with quotes or non-ASCII are fine).
public func eventJSON(_ id: String, _ type: String, _ time: String, _ subject: String, source: String = "oms",
                      data: JSONValue = [:], extra: [String: JSONValue] = [:]) -> String
{
    var o: [String: JSONValue] = ["specversion": "1.0", "id": .string(id), "source": .string(source), "type": .string(type),
                                  "time": .string(time), "subject": .string(subject), "data": data]
    for (k, v) in extra { o[k] = v }
    return JSONValue.object(o).jsonString
}

/// Polls `body` every 50 ms until it returns a value or `seconds` pass (errors count as no value yet): for
/// separate processes, which a test cannot clock.
///
/// `body` is asked once more after the deadline: a test task that was not scheduled for a while (a loaded
/// machine, every thread of the pool busy) still sees the state it waited for instead of failing on the
/// clock alone.
public func eventually<T>(_ seconds: Double, _ body: () async throws -> T?) async throws -> T? {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if let v = try? await body() { return v }
        try await Task.sleep(nanoseconds: 50_000_000)
    }
    return try? await body()
}

/// Runs blocking `work` (a child process waited for, say) on a thread of its own and awaits it, so it does not
/// hold a thread of Swift's cooperative pool meanwhile. That pool has as many threads as cores (two here) and
/// serves every test of the process: a schemathesis or chDB run of minutes waited for in place stalls the
/// other tests' tasks, clocks and deadlines for as long.
public func offThePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
        Thread { c.resume(with: Result { try work() }) }.start()
    }
}

extension Process {
    /// Waits for the process to end without holding a thread of the cooperative pool (`waitUntilExit`
    /// blocks one, see `offThePool`): polls every 10 ms.
    public func exited() async {
        while isRunning { try? await Task.sleep(nanoseconds: 10_000_000) }
    }
}

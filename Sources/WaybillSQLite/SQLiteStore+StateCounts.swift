import WaybillModel
import WaybillStore

extension SQLiteStore: OrderStateCounter {
    /// One pass over the `orders_state` index (a covering scan, no table reads).
    public func orderCountsByState() throws -> [Stage?: Int] {
        try readers.with { c in
            let s = try c.prepare("SELECT state, count(*) FROM orders GROUP BY state")
            var out: [Stage?: Int] = [:]
            while try s.step() {
                let stage = s.isNull(0) ? nil : Stage(rawValue: s.int(0))
                out[stage, default: 0] += s.int(1)
            }
            return out
        }
    }
}

extension SQLiteStore: CommitObservable {
    public func observeCommits(_ observer: (@Sendable (_ signal: String, _ seconds: Double) -> Void)?) {
        writer.commitObserver.withLock { $0 = observer }
    }
}

import Foundation
import WaybillKPI
import WaybillModel

/// Warming the step comparison's buckets when a server starts.
///
/// A trace document compares each step of its order with the same step's typical duration over the 7
/// days before it (`StepComparison`), read from the step rollup's hourly buckets (`rollupRows`). A
/// bucket nobody has computed yet is computed from the facts of every order indexed under it: on a
/// store of 1,000,000 orders, a day of buckets is a read of about 33,000 facts rows (a third of a
/// second in ClickHouse) and their fold, so the first lookups of a fresh server took seconds each.
/// `warmStepRollups` computes the newest buckets on a thread of its own while the server already
/// answers; they are kept in the process (`bucketCache`) and in `rollup_cache`, where another server
/// or the next start reads them instead of computing them again.
extension ClickHouseStore {
    /// Days of the step rollup's buckets the warm-up covers, back from the newest bucket that holds
    /// orders: the 7-day windows of the steps of the last four weeks' orders.
    public static let stepWarmUpDays = 35

    /// Starts computing the step rollup's buckets of the newest `days` days (newest first), on a thread
    /// of its own, and returns at once; `done` gets the number of buckets then held, or the error. Reads
    /// meanwhile compute whatever buckets they lack, as without it. Stops early when the store closes.
    public func warmStepRollups(days: Int = stepWarmUpDays, done: (@Sendable (Result<Int, Error>) -> Void)? = nil) {
        guard rollup != nil, days > 0 else { return }
        Thread.detachNewThread { [self] in
            let r = Result { try warmStepRollupsNow(days: days) }
            done?(r)
        }
    }

    /// The warm-up itself (blocking): a day of buckets at a time, each as a report would read it.
    func warmStepRollupsNow(days: Int) throws -> Int {
        let dimension = StepRollup.dimension
        let newest = try query(routedFirst { table in
            "SELECT count() AS n, max(bucket) AS hi FROM \(table("rollup_dirty")) WHERE dim = \(SQL.quote(indexDimension(dimension)))"
        })
        guard let n = newest.first?["n"]?.int64, n > 0, let hi = newest.first?["hi"]?.int64 else { return 0 }
        let day: Micros = 86_400_000_000
        let end = hi + StepRollup.bucketWidth
        var buckets = Set<Micros>()
        for d in 0..<days {
            if isClosed { break }
            let upper = end - Micros(d) * day
            for (key, _) in try rollupRows(dimension: dimension, in: [(upper - day)..<upper]) { buckets.insert(key.bucketStart) }
        }
        return buckets.count
    }
}

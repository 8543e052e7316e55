import WaybillModel

extension EventWriteSession {
    /// Retention, in one transaction: deletes the events before `cutoff` with their hashes, the spans
    /// that start before it, and the orders last active before it (taken out of the rollups first).
    /// Link groups stay. Returns how many events were deleted.
    func deleteBefore(_ cutoff: Micros) throws -> Int {
        let deleted = try conn.transaction {
            try dedup.deleteHashes(ofEventsBefore: cutoff)
            try conn.prepare("DELETE FROM events WHERE time < ?").bind(1, cutoff).run()
            let n = conn.changes
            try spanWriter.deleteBefore(cutoff)
            if let rollups { try rollups.apply(try orders.retractions(before: cutoff)) }
            try orders.deleteBefore(cutoff)
            return n
        }
        try dedup.reloadAfterRetention()
        return deleted
    }
}

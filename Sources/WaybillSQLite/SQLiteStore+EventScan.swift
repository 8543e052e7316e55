import WaybillModel
import WaybillStore

/// `EventScanner` over the event blocks (`EventBlockTable.scan`): pages in `(time, tie)` order, where the
/// tie-break is the order events were stored in (block sequence, then index in the block).
extension SQLiteStore: EventScanner {
    public func scanEvents(in range: Range<Micros>, after cursor: EventScanCursor?, limit: Int) throws -> EventScanPage {
        guard !range.isEmpty else { return EventScanPage(events: [], next: nil) }
        let n = max(1, min(limit, 100_000))
        let after = cursor.map { (time: $0.time, tie: Int64($0.tieBreak) ?? Int64.min) }
        return try readers.with { c in
            let (found, more) = try EventBlockTable.scan(in: range, after: after, limit: n, dictionary: eventDictionary, c)
            let next = more ? found.last.map { EventScanCursor(time: $0.event.time, tieBreak: String($0.tie)) } : nil
            return EventScanPage(events: found.map(\.event), next: next)
        }
    }
}

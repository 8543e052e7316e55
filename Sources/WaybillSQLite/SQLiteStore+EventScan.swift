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

    /// The whole window in one pass over the blocks, each read and decoded once (`scanEvents` pages reread
    /// the hour of blocks before their cursor and parse the blocks after their last event): blocks come in
    /// `(tmin, seq)` order, a batch of them per read (no read transaction stays open while `body` runs),
    /// and since every event of a block is at or after its `tmin`, the events before the latest block's
    /// `tmin` are complete and go out in `(time, tie)` order. Memory holds the events of about an hour (a
    /// block's span) and a batch; should that exceed `4 × pageSize` events (a burst), the rest of the
    /// window is read with `scanEvents` pages from the last event handed out.
    public func forEachEventPage(in range: Range<Micros>, pageSize: Int, _ body: ([CloudEvent]) throws -> Void) throws {
        guard !range.isEmpty else { return }
        let page = max(1, min(pageSize, 100_000))
        let cap = 4 * page
        var pending: [(event: CloudEvent, tie: Int64)] = []
        var lastOut: (time: Micros, tie: Int64)?
        var position: (tmin: Micros, seq: Int64)?
        let start = EventBlocks.earliestBlockStart(for: range.lowerBound)
        func emit(before limit: Micros?) throws {
            pending.sort { ($0.event.time, $0.tie) < ($1.event.time, $1.tie) }
            let split = limit.map { l in pending.firstIndex { $0.event.time >= l } ?? pending.count } ?? pending.count
            var i = 0
            while i < split {
                let j = min(split, i + page)
                try body(pending[i..<j].map(\.event))
                i = j
            }
            if split > 0 { lastOut = (pending[split - 1].event.time, pending[split - 1].tie) }
            pending.removeSubrange(0..<split)
        }
        while true {
            let batch: [(tmin: Micros, seq: Int64, events: [(index: Int, event: CloudEvent)])] = try readers.with { c in
                let s = try c.prepare("""
                    SELECT seq, tmin, body, skip FROM event_blocks WHERE tmin >= ?1 AND (tmin > ?1 OR seq > ?2) AND tmin < ?3 AND tmax >= ?4
                    ORDER BY tmin, seq LIMIT 256
                    """)
                s.bind(1, position?.tmin ?? start).bind(2, position?.seq ?? Int64.min).bind(3, range.upperBound).bind(4, range.lowerBound)
                defer { s.reset() }
                var out: [(tmin: Micros, seq: Int64, events: [(index: Int, event: CloudEvent)])] = []
                while try s.step() {
                    let seq = s.int64(0)
                    out.append((s.int64(1), seq, try EventBlockTable.decode(s.blob(2), skip: s.isNull(3) ? nil : s.blob(3), seq: seq,
                                                                            dictionary: eventDictionary, c)))
                }
                return out
            }
            guard let last = batch.last else { break }
            for b in batch {
                for (i, e) in b.events where range.contains(e.time) { pending.append((e, b.seq << 20 | Int64(i))) }
            }
            position = (last.tmin, last.seq)
            try emit(before: last.tmin)
            if pending.count > cap {
                // A burst: page through the rest from the last event handed out.
                var cursor = lastOut.map { EventScanCursor(time: $0.time, tieBreak: String($0.tie)) }
                pending = []
                repeat {
                    let p = try scanEvents(in: range, after: cursor, limit: page)
                    if !p.events.isEmpty { try body(p.events) }
                    cursor = p.next
                } while cursor != nil
                return
            }
        }
        try emit(before: nil)
    }
}

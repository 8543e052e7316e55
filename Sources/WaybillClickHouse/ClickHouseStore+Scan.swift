import Foundation
import WaybillModel
import WaybillStore

/// Whole-window reads of events in time order (`EventScanner`), a bounded page at a time: ordered by
/// `(time, source, id)`, each `(source, id)` once; the cursor's tie-break is the last event's `(source, id)`.
extension ClickHouseStore: EventScanner {
    public func scanEvents(in range: Range<Micros>, after cursor: EventScanCursor?, limit: Int) throws -> EventScanPage {
        guard !range.isEmpty else { return EventScanPage(events: [], next: nil) }
        let limit = max(1, limit)
        var sql = "SELECT source, id, type, time, subject, trace_id, raw FROM \(t.table("events")) WHERE time >= \(range.lowerBound) AND time < \(range.upperBound)"
        if let c = cursor {
            guard let (source, id) = Self.decodeTieBreak(c.tieBreak) else { throw QueryError(field: "cursor", rule: "is not a cursor this store issued") }
            sql += " AND (time > \(c.time) OR (time = \(c.time) AND (source > \(SQL.quote(source)) OR (source = \(SQL.quote(source)) AND id > \(SQL.quote(id))))))"
        }
        sql += " ORDER BY time, source, id LIMIT 1 BY source, id LIMIT \(limit)"
        let events = try query(sql).compactMap(Self.event)
        let next = events.count < limit ? nil : events.last.map { EventScanCursor(time: $0.time, tieBreak: Self.encodeTieBreak($0.source, $0.id)) }
        return EventScanPage(events: events, next: next)
    }

    static func encodeTieBreak(_ source: String, _ id: String) -> String {
        JSONValue.array([.string(source), .string(id)]).jsonString
    }

    static func decodeTieBreak(_ s: String) -> (String, String)? {
        guard let a = (try? JSONParser.parse(s))?.arrayValue, a.count == 2, let source = a[0].stringValue, let id = a[1].stringValue else { return nil }
        return (source, id)
    }
}

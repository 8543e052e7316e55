import WaybillModel

/// The `orders.facts` column: an order's facts in the compact binary form of `OrderFactsBinary`
/// (leading byte 3; 2 before its strings referred to earlier ones), written once per order and write on the single writer thread and decoded by every
/// reader of facts (traces, KPI drill-downs, retention). Older forms stay readable and are rewritten in
/// the binary form when the order is next written: a value that starts with `{` is the facts' JSON
/// (`OrderFacts.storageBytes`, before schema 11), one that starts with 0x01 is that JSON raw-deflated with
/// `dictionaryV1` (schema 11).
enum FactsCodec {
    /// Never change these bytes: rows written with them are decoded with them. A new dictionary needs a
    /// new leading byte.
    static let dictionaryV1: [UInt8] = Array((
        #"{"accepted":{"channel":"web","customer":"C-1","lines":[{"line":"1","qty":1,"sku":"SKU-0"},{"line":"2","qty":2,"sku":"SKU-0"}],"#
        + #""promised":1790000000000000.0,"ref":[1790000000000000.0,"oms-1","oms"],"region":"NE"},"#
        + #""allocation":{"lines":[{"line":"1","qty":1,"sku":"SKU-0","warehouse":"DC-"},{"line":"2","qty":2,"sku":"SKU-0","warehouse":"DC-"}],"#
        + #""ref":[1790000000000000.0,"allocation-1","allocation"],"warehouse":"DC-"},"#
        + #""first":1790000000000000.0,"last":1790000000000000.0,"n":10,"order":"SO-000","released":1790000000000000.0,"#
        + #""shipment":{"carrier":"UPS","ref":[1790000000000000.0,"tms-1","tms"],"tracking":"1Z","warehouse":"DC-"},"#
        + #""sources":["allocation","erp","oms","tms","wms"],"#
        + #""stages":{"accepted":1790000000000000.0,"allocated":1790000000000000.0,"cancelled":1790000000000000.0,"#
        + #""delivered":1790000000000000.0,"invoiced":1790000000000000.0,"packed":1790000000000000.0,"#
        + #""picked":1790000000000000.0,"released":1790000000000000.0,"shipped":1790000000000000.0,"validated":1790000000000000.0},"#
        + #""types":["order.accepted","order.allocated","order.backordered","order.cancelled","order.credit_checked","#
        + #""order.delivered","order.invoiced","order.packed","order.picked","order.released","order.shipped","order.short_picked","order.validated"]}"#
    ).utf8)

    /// The in-memory form (the writer's cache, an epoch's facts): the order id is left out, it is the
    /// row's `order_id` and the key of every in-memory copy.
    static func encode(_ f: OrderFacts) -> [UInt8] { OrderFactsBinary.encode(f, omittingOrderID: true) }

    /// The stored form (`orders.facts`): also leaves out what the row's columns hold (format 4,
    /// `OrderFactsBinary.RowColumns`: times, event count, types and sources) when they hold it exactly;
    /// readers select those columns with the value (`rowColumns`, `decode(_:at:)`).
    static func encodeRow(_ f: OrderFacts) -> [UInt8] { OrderFactsBinary.encode(f, omittingOrderID: true, omittingRowColumns: true) }

    /// What a reader of stored facts selects, in this order: the value, the order id, then the columns of
    /// `RowColumns` (first and last time, event count, the stage times in stage order, types, sources).
    static let rowColumns = "facts, order_id, first_time, last_time, event_count, "
        + Stage.allCases.map(Schema.stageColumn).joined(separator: ", ") + ", types, sources"

    /// The facts of the row a statement is on, its `rowColumns` from column `i` on; nil when they cannot
    /// be read.
    static func decode(_ s: Statement, at i: Int32) -> OrderFacts? { decodeStored(s, at: i)?.facts }

    /// `decode(_:at:)`, and whether the row's columns are known to hold the facts: true for a value of
    /// format 4 (read from them). An older value holds its own times, and its row's columns may not agree
    /// with it (a row written before a column existed, or converted from an older layout): a writer then
    /// rewrites every column, not only those that changed, before it stores format 4.
    static func decodeStored(_ s: Statement, at i: Int32) -> (facts: OrderFacts, columnsHold: Bool)? {
        let value = s.blob(i)
        let orderID = s.text(i + 1)
        guard value.first == 4 else { return decode(value, orderID: orderID).map { ($0, false) } }
        let n = Int32(Stage.allCases.count)
        let row = OrderFactsBinary.RowColumns(first: s.int64(i + 2), last: s.int64(i + 3), count: s.int(i + 4),
                                              stages: (0..<n).map { s.optInt64(i + 5 + $0) },
                                              types: WordSetColumn.decode(s.blob(i + 5 + n)), sources: WordSetColumn.decode(s.blob(i + 6 + n)))
        return OrderFactsBinary.decode(value, orderID: orderID, row: row).map { ($0, true) }
    }

    /// The facts of a stored value of the order `orderID`; nil when it cannot be read, or is of format 4
    /// and `row` (its row's columns) is nil. (The older forms hold the id themselves.)
    static func decode(_ b: [UInt8], orderID: String, row: OrderFactsBinary.RowColumns? = nil) -> OrderFacts? {
        guard let first = b.first else { return nil }
        switch first {
        case UInt8(ascii: "{"): return OrderFacts(storageBytes: b)
        case 1:
            var s = ByteSource(b)
            s.pos = 1
            guard let size = try? s.count(), size <= 64 << 20,
                  let json = try? Zlib.inflate(b[s.pos...], size: size, dictionary: dictionaryV1) else { return nil }
            return OrderFacts(storageBytes: json)
        case 2, 3, 4: return OrderFactsBinary.decode(b, orderID: orderID, row: row)
        default: return nil
        }
    }

}

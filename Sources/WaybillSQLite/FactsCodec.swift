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

    /// The order id is left out: it is the row's `order_id` (and the key of every in-memory copy).
    static func encode(_ f: OrderFacts) -> [UInt8] { OrderFactsBinary.encode(f, omittingOrderID: true) }

    /// The facts of a stored value of the order `orderID`; nil when it cannot be read. (The older forms
    /// hold the id themselves.)
    static func decode(_ b: [UInt8], orderID: String) -> OrderFacts? {
        guard let first = b.first else { return nil }
        switch first {
        case UInt8(ascii: "{"): return OrderFacts(storageBytes: b)
        case 1:
            var s = ByteSource(b)
            s.pos = 1
            guard let size = try? s.count(), size <= 64 << 20,
                  let json = try? Zlib.inflate(b[s.pos...], size: size, dictionary: dictionaryV1) else { return nil }
            return OrderFacts(storageBytes: json)
        case 2, 3: return OrderFactsBinary.decode(b, orderID: orderID)
        default: return nil
        }
    }

}

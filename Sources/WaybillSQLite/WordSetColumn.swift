/// The `orders.types` and `orders.sources` columns: an order's set of event types (or sources) as bytes
/// that search finds a value in with one `instr(column, needle)`.
///
/// ```
/// column = "|" { token "|" }*        tokens in sorted order of their words
/// token  = 0xFF code                 a known word (`words[code - 1]`; code is never "|")
///        | utf8                      any other word, as it is
/// ```
///
/// 0xFF never occurs in UTF-8, so a coded token cannot match inside a word written as text, and the
/// needle of a word is `"|" token "|"`. Known words take 2 bytes instead of up to 20: the types of a
/// whole order take about 30 bytes instead of 140 (about 12 bytes per stored event on interleaved data).
/// Rows written before (schema version 12 and earlier) hold every word as text; search looks for both
/// needles (`needles`), and a row takes the coded form when its order is next written.
enum WordSetColumn {
    /// Coded words (code = index + 1). Append only: stored rows refer to these positions.
    static let words: [String] = [
        "order.accepted", "order.validated", "order.credit_checked", "order.allocated", "order.backordered",
        "order.released", "order.picked", "order.short_picked", "order.packed", "order.shipped", "order.delivered",
        "order.invoiced", "order.cancelled",
        "shipment.created", "shipment.picked_up", "shipment.in_transit", "shipment.out_for_delivery", "shipment.delivered",
        "shipment.exception", "invoice.paid",
        "oms", "allocation", "wms", "tms", "erp", "wms-central", "wms-east", "wms-north", "wms-south", "wms-west", "finance",
        "carrier-dhl", "carrier-ups", "carrier-fedex", "carrier-usps",
    ]
    static let codes: [String: UInt8] = Dictionary(uniqueKeysWithValues: words.enumerated().map { ($1, UInt8($0 + 1)) })
    static let marker: UInt8 = 0xFF
    static let separator = UInt8(ascii: "|")

    static func token(_ word: String) -> [UInt8] {
        if let c = codes[word] { return [marker, c] }
        return Array(word.utf8)
    }

    /// The column's bytes for a set of words.
    static func encode(_ set: Set<String>) -> [UInt8] {
        var out: [UInt8] = [separator]
        for w in set.sorted() {
            out += token(w)
            out.append(separator)
        }
        return out
    }

    /// What search looks for in the column to find `word`: the coded needle, and the text needle of
    /// rows written before the coding when it differs.
    static func needles(_ word: String) -> [[UInt8]] {
        let text = [separator] + Array(word.utf8) + [separator]
        let coded = [separator] + token(word) + [separator]
        return coded == text ? [text] : [coded, text]
    }

    /// The words of a column in either form (tests, tools).
    static func decode(_ column: [UInt8]) -> Set<String> {
        var out = Set<String>()
        var i = column.startIndex
        guard i < column.endIndex, column[i] == separator else { return [] }
        i += 1
        while i < column.endIndex {
            if column[i] == marker, i + 1 < column.endIndex {
                let c = Int(column[i + 1])
                if c >= 1, c <= words.count { out.insert(words[c - 1]) }
                i += 3
                continue
            }
            guard let end = column[i...].firstIndex(of: separator) else { break }
            out.insert(String(decoding: column[i..<end], as: UTF8.self))
            i = end + 1
        }
        return out
    }
}

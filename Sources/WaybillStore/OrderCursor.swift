import Foundation
import WaybillModel

/// The `next_cursor` of an order search page: the last order's first-event time and id, base64url without
/// padding. Every engine issues and reads the same text, so a cursor from one server is good on another
/// server over the same store.
public enum OrderCursor {
    public static func encode(_ t: Micros, _ id: String) -> String {
        Data("\(t)|\(id)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Nil for a text this format never gives.
    public static func decode(_ s: String) -> (Micros, String)? {
        var b = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b.count % 4 != 0 { b += "=" }
        guard let d = Data(base64Encoded: b), let text = String(data: d, encoding: .utf8),
              let bar = text.firstIndex(of: "|"), let t = Micros(text[..<bar]) else { return nil }
        return (t, String(text[text.index(after: bar)...]))
    }
}

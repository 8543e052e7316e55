/// Percent-encoding for the URLs Waybill builds (trace links, the CLI's remote mode, page links).
///
/// Contract: every byte of the UTF-8 text except RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`, and in a path segment also `:` and `@`, so `shipment:1Z9` stays readable) is
/// encoded, so any key the collector accepted (spaces, quotes, `;`, `%`, `/`, `?`, `#`, `+`, non-ASCII)
/// survives one decoding by the server unchanged. Encode once, never an already encoded string.
public enum URLText {
    /// A path segment that follows a `/` (never the first segment of a relative reference).
    public static func pathSegment(_ s: String) -> String { encode(s, keeping: [UInt8(ascii: ":"), UInt8(ascii: "@")]) }

    /// `a=1&b=x%20y`, names sorted so that equal queries give equal URLs.
    public static func query(_ items: [String: String]) -> String {
        items.sorted { $0.key < $1.key }.map { encode($0.key) + "=" + encode($0.value) }.joined(separator: "&")
    }

    static let hex = Array("0123456789ABCDEF".utf8)

    static func encode(_ s: String, keeping extra: [UInt8] = []) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(b)
            case _ where extra.contains(b):
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

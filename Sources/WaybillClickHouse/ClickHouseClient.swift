import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import WaybillModel
import WaybillStore

/// What went wrong talking to ClickHouse.
public enum ClickHouseError: Error, Sendable, CustomStringConvertible {
    /// No host answered (each host with its error).
    case unreachable([String])
    /// The server refused the user or password.
    case authentication(String)
    /// The server answered with an error: ClickHouse's code and message.
    case server(code: Int, message: String, statement: String)
    /// The server is older than Waybill supports, or lacks something it needs.
    case unsupported(String)
    /// The cluster named in the URL is not what Waybill needs.
    case cluster(String)

    public var description: String {
        switch self {
        case .unreachable(let hosts): return "ClickHouse is unreachable: " + hosts.joined(separator: "; ")
        case .authentication(let m): return "ClickHouse refused the credentials: \(m) (check the user in the URL and the password)"
        case .server(let code, let message, let statement):
            return "ClickHouse error \(code): \(message)" + (statement.isEmpty ? "" : " in: \(statement.prefix(200))")
        case .unsupported(let m): return "ClickHouse version not supported: \(m)"
        case .cluster(let m): return "ClickHouse cluster: \(m)"
        }
    }

    /// A failure a retry may cure: the store answers it as `StoreError.fault` (HTTP 503 + Retry-After).
    var fault: StorageFault? {
        switch self {
        case .unreachable(let hosts): return StorageFault(kind: .ioError, message: "ClickHouse unreachable", context: hosts.joined(separator: "; "))
        case .server(let code, let message, _):
            let kind: StorageFault.Kind?
            switch code {
            case 243: kind = .diskFull                 // NOT_ENOUGH_SPACE
            case 241, 173: kind = .outOfMemory         // MEMORY_LIMIT_EXCEEDED, CANNOT_ALLOCATE_MEMORY
            case 252, 202, 159, 209, 210: kind = .busy // TOO_MANY_PARTS, TOO_MANY_SIMULTANEOUS_QUERIES, TIMEOUT_EXCEEDED, SOCKET_TIMEOUT, NETWORK_ERROR
            case 164: kind = .readOnly                 // READONLY
            case 74, 75, 76, 77, 1000: kind = .ioError // CANNOT_READ/WRITE/OPEN..., POCO_EXCEPTION
            case 279, 519: kind = .busy                // ALL_CONNECTION_TRIES_FAILED (a shard down), NO_ACTIVE_REPLICAS
            default: kind = nil
            }
            return kind.map { StorageFault(kind: $0, message: "ClickHouse error \(code)", context: String(message.prefix(300))) }
        default: return nil
        }
    }

    /// As the store throws it: a fault when a retry may cure it, else an engine error.
    var storeError: StoreError {
        if let f = fault { return .fault(f) }
        return .engine(description)
    }
}

/// Every statement Waybill sends to ClickHouse goes through `ClickHouseClient.send`, which records its
/// text here when recording is on, so that a test can check each of them against another ClickHouse.
public enum StatementLog {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var recording = false
    nonisolated(unsafe) private static var texts: [String] = []
    nonisolated(unsafe) private static var seen: Set<String> = []

    /// Starts (true) or stops recording; starting clears what was recorded.
    public static func record(_ on: Bool) {
        lock.withLock {
            recording = on
            if on {
                texts = []
                seen = []
            }
        }
    }

    /// Each distinct statement text recorded, in the order first sent. Inserts are recorded without
    /// their rows (`INSERT INTO t (columns) FORMAT JSONEachRow`).
    public static var statements: [String] { lock.withLock { texts } }

    static func note(_ sql: String) {
        lock.withLock {
            guard recording, texts.count < 100_000, seen.insert(sql).inserted else { return }
            texts.append(sql)
        }
    }
}

/// ClickHouse's HTTP interface: statements as POST bodies, inserts as `FORMAT JSONEachRow` rows, answers
/// as `FORMAT JSONEachRow` lines. The hosts of the URL are tried in turn; the one that answered last is
/// tried first next time.
final class ClickHouseClient: @unchecked Sendable {
    let url: ClickHouseURL
    let http: HTTPClient
    private let lock = NSLock()
    private var preferred = 0
    /// Seconds a statement may take.
    var timeoutSeconds: Int64 = 60

    init(url: ClickHouseURL) {
        self.url = url
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(3), read: .seconds(120))
        // Reads of one trace go out in parallel and a server has many requests at once: more than
        // AsyncHTTPClient's default of 8 connections per host (the rest would queue for a connection).
        // Idle connections are closed before ClickHouse's `keep_alive_timeout` (3 s by default) closes
        // them: a request sent on a connection the server is closing fails ("I/O on closed channel").
        config.connectionPool = .init(idleTimeout: .milliseconds(2500), concurrentHTTP1ConnectionsPerHostSoftLimit: 32)
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    func shutdown() {
        try? http.syncShutdown()
    }

    /// Settings sent with every statement: integers as JSON numbers, inserts into Distributed tables
    /// written to the shards before they return (so an acknowledged append is stored, not queued).
    static let commonSettings = "output_format_json_quote_64bit_integers=0&insert_distributed_sync=1&input_format_skip_unknown_fields=0"

    private func request(host: ClickHouseURL.Host, database: String?, query: String?, body: [UInt8],
                         external: ExternalKeys? = nil) throws -> HTTPClient.Request {
        var q = Self.commonSettings
        if let database { q += "&database=" + database }
        if let query { q += "&query=" + (query.addingPercentEncoding(withAllowedCharacters: Self.queryAllowed) ?? "") }
        var headers = HTTPHeaders()
        headers.add(name: "X-ClickHouse-User", value: url.user)
        if let p = url.password { headers.add(name: "X-ClickHouse-Key", value: p) }
        var payload = body
        if let external {
            // ClickHouse's external data: the table's rows as one file of a multipart form.
            for n in external.names { q += "&\(n)_structure=key%20String&\(n)_format=TabSeparated" }
            headers.add(name: "Content-Type", value: "multipart/form-data; boundary=\(ExternalKeys.boundary)")
            payload = external.form
        } else {
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        }
        return try HTTPClient.Request(url: "http://\(host.description)/?\(q)", method: .POST, headers: headers,
                                      body: .byteBuffer(ByteBuffer(bytes: payload)))
    }

    private static let queryAllowed: CharacterSet = {
        var s = CharacterSet.alphanumerics
        s.insert(charactersIn: "-._~")
        return s
    }()

    /// Sends one statement (`sql`, recorded in `StatementLog`) with `rows` as its data, to the host at
    /// `only` or, when nil, to the preferred host and then the others; returns the body of the answer.
    func send(_ sql: String, rows: [UInt8]? = nil, database: Bool = true, only: Int? = nil, external: ExternalKeys? = nil) async throws -> [UInt8] {
        var failures: [String] = []
        for i in hostOrder(sql, only) {
            let req = try request(host: url.hosts[i], database: database ? url.database : nil, query: rows == nil && external == nil ? nil : sql,
                                  body: rows ?? Array(sql.utf8), external: external)
            let response: HTTPClient.Response
            do {
                response = try await http.execute(request: req, deadline: .now() + .seconds(timeoutSeconds)).get()
            } catch {
                failures.append("\(url.hosts[i]): \(error)")
                continue
            }
            return try answer(response, host: i, only: only, sql: sql)
        }
        throw ClickHouseError.unreachable(failures)
    }

    /// `send`, blocking the calling thread on the HTTP client's future (the protocols' readers are
    /// synchronous and run on the query layer's own threads, never on an event loop).
    func sendBlocking(_ sql: String, rows: [UInt8]? = nil, database: Bool = true, only: Int? = nil, external: ExternalKeys? = nil) throws -> [UInt8] {
        var failures: [String] = []
        for i in hostOrder(sql, only) {
            let req = try request(host: url.hosts[i], database: database ? url.database : nil, query: rows == nil && external == nil ? nil : sql,
                                  body: rows ?? Array(sql.utf8), external: external)
            let response: HTTPClient.Response
            do {
                response = try http.execute(request: req, deadline: .now() + .seconds(timeoutSeconds)).wait()
            } catch {
                failures.append("\(url.hosts[i]): \(error)")
                continue
            }
            return try answer(response, host: i, only: only, sql: sql)
        }
        throw ClickHouseError.unreachable(failures)
    }

    private func hostOrder(_ sql: String, _ only: Int?) -> [Int] {
        StatementLog.note(sql)
        if let only { return [only] }
        let first = lock.withLock { preferred }
        return (0..<url.hosts.count).map { (first + $0) % url.hosts.count }
    }

    private func answer(_ response: HTTPClient.Response, host i: Int, only: Int?, sql: String) throws -> [UInt8] {
        let body = response.body.map { Array($0.readableBytesView) } ?? []
        guard response.status == .ok else { throw Self.error(status: response.status, body: body, statement: sql) }
        if only == nil { lock.withLock { preferred = i } }
        return body
    }

    static func error(status: HTTPResponseStatus, body: [UInt8], statement: String) -> ClickHouseError {
        let text = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        // `Code: 516, e.displayText() = DB::Exception: ...`
        var code = 0
        if let r = text.range(of: "Code: ") {
            code = Int(text[r.upperBound...].prefix { $0.isNumber }) ?? 0
        }
        if status == .unauthorized || status == .forbidden || [192, 193, 194, 516].contains(code) {
            return .authentication(String(text.prefix(300)))
        }
        return .server(code: code, message: String(text.prefix(1000)), statement: statement)
    }

    // MARK: Reading answers

    /// The rows of a `FORMAT JSONEachRow` answer.
    static func rows(_ body: [UInt8]) throws -> [JSONValue] {
        var out: [JSONValue] = []
        var start = 0
        for i in body.indices where body[i] == UInt8(ascii: "\n") {
            if i > start {
                do {
                    out.append(try body.withUnsafeBufferPointer { try JSONParser.parse(UnsafeBufferPointer(rebasing: $0[start..<i]), maxDepth: 128) })
                } catch {
                    throw StoreError.engine("ClickHouse answered a row that is not JSON: \(error)")
                }
            }
            start = i + 1
        }
        return out
    }
}

/// The values of a `FORMAT RowBinary` answer, read in the order of the statement's columns: each row's
/// values one after the other, no separators (a String is its length as a LEB128 varint, then its bytes;
/// integers little-endian). Cheaper to read than JSONEachRow, which is parsed into a tree per row. An
/// answer that ends inside a value is refused.
struct RowBinaryReader {
    private let bytes: [UInt8]
    private var at = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { at >= bytes.count }

    private static func truncated() -> StoreError { StoreError.engine("ClickHouse answered a RowBinary row that ends inside a value") }

    private mutating func length() throws -> Int {
        var n = 0, shift = 0
        while true {
            guard at < bytes.count, shift < 64 else { throw Self.truncated() }
            let b = bytes[at]
            at += 1
            n |= Int(b & 0x7f) << shift
            if b < 0x80 { break }
            shift += 7
        }
        guard n >= 0, n <= bytes.count - at else { throw Self.truncated() }
        return n
    }

    /// The bytes of a String value.
    mutating func stringBytes() throws -> ArraySlice<UInt8> {
        let n = try length()
        defer { at += n }
        return bytes[at..<at + n]
    }

    mutating func string() throws -> String { String(decoding: try stringBytes(), as: UTF8.self) }

    mutating func uint64() throws -> UInt64 {
        guard bytes.count - at >= 8 else { throw Self.truncated() }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[at + i]) << (8 * i) }
        at += 8
        return v
    }
}

/// A list of keys sent beside a statement as ClickHouse's external data: a temporary table named
/// `_keys` with one `key String` column, which the statement reads (`subject IN _keys`; over Distributed
/// tables `GLOBAL IN _keys`, which ships it to the shards), and any `more` tables of the same structure
/// under their own names (`ExternalTable`). ClickHouse 18.16 spends about 20 ms parsing a literal list
/// of 1,000 strings; the table costs it next to nothing.
struct ExternalKeys: Sendable {
    static let name = "_keys"
    /// The form's boundary. The rows are TabSeparated with every CR escaped, so "\r\n--" never occurs in them.
    static let boundary = "waybill-external-keys"
    /// The tables' names (`_keys` first), each sent as `NAME_structure` and `NAME_format` beside the query.
    let names: [String]
    let form: [UInt8]

    init(_ keys: some Sequence<String>, more: [ExternalTable] = []) {
        var out: [UInt8] = []
        Self.part(ExternalTable(name: Self.name, keys), into: &out)
        for t in more { Self.part(t, into: &out) }
        out += Array("--\(Self.boundary)--\r\n".utf8)
        names = [Self.name] + more.map(\.name)
        form = out
    }

    /// One file of the multipart form: the table's rows, one key a line.
    private static func part(_ t: ExternalTable, into out: inout [UInt8]) {
        out += Array("--\(Self.boundary)\r\nContent-Disposition: form-data; name=\"\(t.name)\"; filename=\"\(t.name)\"\r\n".utf8)
        out += Array("Content-Type: application/octet-stream\r\n\r\n".utf8)
        out += t.rows
        out += Array("\r\n".utf8)
    }

    /// A TabSeparated field: backslash, tab, newline, carriage return and NUL escaped.
    static func escape(_ s: String, into out: inout [UInt8]) {
        for b in s.utf8 {
            switch b {
            case 0x5C: out += [0x5C, 0x5C]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x00: out += [0x5C, UInt8(ascii: "0")]
            default: out.append(b)
            }
        }
    }
}

/// Another external table beside `_keys` (`ExternalKeys(_:more:)`): `name` and its TabSeparated rows,
/// encoded once for all the statements that send it.
struct ExternalTable: Sendable {
    let name: String
    let rows: [UInt8]

    init(name: String, _ keys: some Sequence<String>) {
        self.name = name
        var out: [UInt8] = []
        for k in keys {
            ExternalKeys.escape(k, into: &out)
            out.append(0x0A)
        }
        rows = out
    }
}

// MARK: SQL text

enum SQL {
    /// A ClickHouse string literal.
    static func quote(_ s: String) -> String {
        var out = "'"
        for ch in s.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "'": out += "\\'"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\0": out += "\\0"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out + "'"
    }

    static func list(_ values: some Sequence<String>) -> String {
        let items = values.map(quote)
        return items.isEmpty ? "('')" : "(" + items.joined(separator: ",") + ")"
    }

    static func int(_ v: Int64?) -> String { v.map(String.init) ?? "NULL" }
}

extension JSONValue {
    var int64: Int64? {
        switch self {
        case .number(let d): return Int64(exactly: d.rounded()) ?? nil
        case .string(let s): return Int64(s)
        default: return nil
        }
    }
}

/// Hex of bytes (how opaque bytes are stored: ClickHouse strings in JSON must be UTF-8 text).
enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)
    static func encode(_ b: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(b.count * 2)
        for x in b {
            out.append(digits[Int(x >> 4)])
            out.append(digits[Int(x & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ s: String) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count % 2 == 0 else { return nil }
        func v(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let a = v(u[i]), let b = v(u[i + 1]) else { return nil }
            out.append(a << 4 | b)
            i += 2
        }
        return out
    }
}

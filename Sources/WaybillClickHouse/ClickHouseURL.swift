import Foundation
import WaybillModel

/// Where a ClickHouse store lives:
/// `clickhouse://[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT...]/DATABASE?cluster=NAME`.
///
/// The ports are ClickHouse's HTTP ports (8123 by default). The hosts are tried in turn (failover); with
/// `cluster`, they must together cover every node of that cluster in ClickHouse's `remote_servers`,
/// because Waybill creates its tables on each node itself. The password may instead come from
/// `WAYBILL_CLICKHOUSE_PASSWORD`; it is never part of `description`.
public struct ClickHouseURL: Sendable, Equatable, CustomStringConvertible {
    public struct Host: Sendable, Equatable, CustomStringConvertible {
        public var name: String
        public var port: Int
        public init(name: String, port: Int) {
            self.name = name
            self.port = port
        }
        /// `host:port`, IPv6 addresses in brackets.
        public var description: String { (name.contains(":") ? "[\(name)]" : name) + ":\(port)" }
    }

    public var user: String
    public var password: String?
    public var hosts: [Host]
    public var database: String
    public var cluster: String?

    public static let passwordVariable = "WAYBILL_CLICKHOUSE_PASSWORD"
    public static let defaultPort = 8123

    public init(user: String = "default", password: String? = nil, hosts: [Host], database: String, cluster: String? = nil) {
        self.user = user
        self.password = password
        self.hosts = hosts
        self.database = database
        self.cluster = cluster
    }

    /// Whether `text` names a ClickHouse store (rather than a SQLite path).
    public static func isClickHouse(_ text: String) -> Bool { text.lowercased().hasPrefix("clickhouse://") }

    /// Parses the URL; a password in `environment[WAYBILL_CLICKHOUSE_PASSWORD]` is used when the URL has none.
    public init(parsing text: String, environment: [String: String] = [:]) throws(FieldError) {
        let prefix = "clickhouse://"
        guard text.lowercased().hasPrefix(prefix) else {
            throw FieldError(field: "store.scheme", rule: "must start with clickhouse://")
        }
        var rest = Substring(text.dropFirst(prefix.count))
        // Query (only `cluster`).
        var cluster: String?
        if let q = rest.firstIndex(of: "?") {
            let query = rest[rest.index(after: q)...]
            rest = rest[..<q]
            for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(parts[0])
                let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? "") : ""
                guard name == "cluster" else { throw FieldError(field: "store.\(name)", rule: "unknown URL parameter; known: cluster") }
                guard Self.isIdentifier(value, extra: "-.") else {
                    throw FieldError(field: "store.cluster", rule: "must be a cluster name of letters, digits, _, - and .")
                }
                cluster = value
            }
        }
        // Path: the database.
        guard let slash = rest.firstIndex(of: "/") else { throw FieldError(field: "store.database", rule: "is missing: add /DATABASE after the hosts") }
        let database = String(rest[rest.index(after: slash)...])
        rest = rest[..<slash]
        guard Self.isIdentifier(database, extra: ""), !(database.first?.isNumber ?? true) else {
            throw FieldError(field: "store.database", rule: "must be a name of letters, digits and _ that does not start with a digit")
        }
        // User info.
        var user = "default"
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let info = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let parts = info.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let u = String(parts[0]).removingPercentEncoding, !u.isEmpty else {
                throw FieldError(field: "store.user", rule: "must not be empty before @")
            }
            user = u
            if parts.count > 1 {
                guard let p = String(parts[1]).removingPercentEncoding else { throw FieldError(field: "store.password", rule: "has a bad %-escape") }
                password = p
            }
        }
        // Hosts.
        var hosts: [Host] = []
        for item in rest.split(separator: ",", omittingEmptySubsequences: false) {
            hosts.append(try Self.host(item))
        }
        if password == nil, let p = environment[Self.passwordVariable] { password = p }
        self.init(user: user, password: password, hosts: hosts, database: database, cluster: cluster)
    }

    private static func host(_ item: Substring) throws(FieldError) -> Host {
        guard !item.isEmpty else { throw FieldError(field: "store.host", rule: "must not be empty (HOST:PORT, several separated by commas)") }
        var name: Substring
        var portText: Substring?
        if item.hasPrefix("[") {
            guard let close = item.firstIndex(of: "]") else { throw FieldError(field: "store.host", rule: "an IPv6 address needs a closing ]") }
            name = item[item.index(after: item.startIndex)..<close]
            let after = item[item.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw FieldError(field: "store.host", rule: "expected :PORT after ]") }
                portText = after.dropFirst()
            }
        } else if let colon = item.firstIndex(of: ":") {
            name = item[..<colon]
            portText = item[item.index(after: colon)...]
        } else {
            name = item
        }
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-._:".contains($0) }) else {
            throw FieldError(field: "store.host", rule: "'\(name)' is not a host name or address")
        }
        var port = defaultPort
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else {
                throw FieldError(field: "store.port", rule: "'\(portText)' must be a port number from 1 to 65535")
            }
            port = p
        }
        return Host(name: String(name), port: port)
    }

    private static func isIdentifier(_ s: String, extra: String) -> Bool {
        !s.isEmpty && s.count <= 128 && s.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_" || extra.unicodeScalars.contains($0)) }
    }

    /// The URL without the password (shown as `***` when there is one).
    public var description: String {
        let auth = user + (password == nil ? "" : ":***") + "@"
        return "clickhouse://" + auth + hosts.map(\.description).joined(separator: ",") + "/" + database + (cluster.map { "?cluster=" + $0 } ?? "")
    }
}

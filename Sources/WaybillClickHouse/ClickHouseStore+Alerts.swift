import Foundation
import WaybillModel
import WaybillStore

/// Alerting state, deadlines, tokens and audit. These tables are small and written by one process at a
/// time (alert evaluation runs in the server started with `--alerts`; tokens are an administrator's), so
/// a change is a new row version and readers take the newest per key.
extension ClickHouseStore {
    // MARK: Deadlines

    public func prepareDeadlines(after: Stage) async throws {}

    public func overdueOrders(after: Stage, expect: Stage, cutoff: Micros, asOf: Micros, replay: Bool,
                              groupBy: OverdueGrouping, limit: Int) throws -> [OverdueGroup] {
        guard after < expect, expect != .cancelled else { return [] }
        let col = ClickHouseSchema.stageColumn(after)
        var sql = "SELECT order_id, \(Self.factsHex()) FROM \(latestOrders("\(col) <= \(cutoff)")) WHERE \(col) <= \(cutoff)"
        if !replay { sql += " AND state < \(Stage.invoiced.rawValue)" }
        var groups: [String?: (count: Int, oldest: Micros, items: [(Micros, String)])] = [:]
        for r in try query(sql) {
            guard let f = Self.facts(r), let at = Self.stageTime(f, after), at <= cutoff else { continue }
            let group: String?
            if replay {
                guard (f.firstEventAt ?? 0) <= cutoff else { continue }
                if let c = Self.stageTime(f, .cancelled), c <= asOf { continue }
                let reached = Stage.allCases.filter { $0 >= expect && $0 != .cancelled }.compactMap { Self.stageTime(f, $0) }.min() ?? .max
                guard reached > asOf else { continue }
                switch groupBy {
                case .none: group = nil
                case .warehouse:
                    if let a = f.allocatedAt, a <= asOf, let w = f.allocationWarehouse { group = w }
                    else if let s = f.shippedAt, s <= asOf { group = f.shipmentWarehouse }
                    else { group = nil }
                case .channel: group = f.channel
                case .region: group = f.region
                }
            } else {
                guard let state = f.state, state.rawValue < Stage.invoiced.rawValue, state >= after,
                      state.rawValue < min(expect.rawValue, Stage.invoiced.rawValue) else { continue }
                switch groupBy {
                case .none: group = nil
                case .warehouse: group = f.allocationWarehouse ?? f.shipmentWarehouse
                case .channel: group = f.channel
                case .region: group = f.region
                }
            }
            var g = groups[group] ?? (0, at, [])
            g.count += 1
            g.oldest = min(g.oldest, at)
            g.items.append((at, f.orderID))
            groups[group] = g
        }
        return groups.map { value, g in
            let sorted = g.items.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            return OverdueGroup(value: value, count: g.count, oldest: g.oldest, orders: Array(sorted.prefix(max(0, limit)).map(\.1)))
        }.sorted { a, b in a.value == nil ? b.value != nil : (b.value != nil && a.value! < b.value!) }
    }

    // MARK: Alert records

    public func alertRecords() throws -> [(fingerprint: String, record: [UInt8])] {
        try query("SELECT fingerprint, record, deleted FROM \(t.table("alert_records")) ORDER BY fingerprint, ver DESC LIMIT 1 BY fingerprint")
            .compactMap { r in
                guard r["deleted"]?.int64 == 0, let fp = r["fingerprint"]?.stringValue, let rec = r["record"]?.stringValue.flatMap(Hex.decode) else { return nil }
                return (fp, rec)
            }
            .sorted { $0.fingerprint < $1.fingerprint }
    }

    public func commitAlerts(_ commit: AlertCommit) async throws {
        if commit.isEmpty && commit.pruneBefore == nil { return }
        try await write {
            if let cutoff = commit.pruneBefore {
                let done = try await queryAsync("SELECT * FROM \(latestOutbox()) WHERE gone = 0 AND status != 'pending' AND done_at < \(cutoff)")
                var rows = RowWriter()
                for r in done {
                    guard var item = Self.outboxItem(r) else { continue }
                    item.id = r["id"]?.int64 ?? 0
                    Self.outboxRow(&rows, item, gone: true)
                }
                try await insert("alert_outbox", rows)
            }
            var records = RowWriter()
            let deleted = Set(commit.deletes)
            for u in commit.upserts where !deleted.contains(u.fingerprint) {
                records.begin()
                records.str("fingerprint", u.fingerprint)
                records.str("record", Hex.encode(u.record))
                records.int("deleted", 0)
                records.uint("ver", Versions.next())
                records.end()
            }
            for d in commit.deletes {
                records.begin()
                records.str("fingerprint", d)
                records.str("record", "")
                records.int("deleted", 1)
                records.uint("ver", Versions.next())
                records.end()
            }
            try await insert("alert_records", records)
            if !commit.notifications.isEmpty {
                let top = try await queryAsync("SELECT max(id) AS m FROM \(t.table("alert_outbox"))").first?["m"]?.int64 ?? 0
                var rows = RowWriter()
                for (i, n) in commit.notifications.enumerated() {
                    var item = n
                    item.id = top + 1 + Int64(i)
                    item.attempts = 0
                    item.status = .pending
                    item.lastError = nil
                    item.doneAt = nil
                    Self.outboxRow(&rows, item, gone: false)
                }
                try await insert("alert_outbox", rows)
            }
        }
    }

    func latestOutbox() -> String {
        "(SELECT * FROM \(t.table("alert_outbox")) ORDER BY id, ver DESC LIMIT 1 BY id)"
    }

    static func outboxRow(_ rows: inout RowWriter, _ n: OutboxItem, gone: Bool) {
        rows.begin()
        rows.int("id", n.id)
        rows.str("hook", n.hook)
        rows.str("fingerprint", n.fingerprint)
        rows.str("kind", n.kind)
        rows.str("body", Hex.encode(n.body))
        rows.int("created", n.created)
        rows.int("next_at", n.nextAt)
        rows.int("attempts", Int64(n.attempts))
        rows.str("status", n.status.rawValue)
        rows.optStr("last_error", n.lastError)
        rows.optInt("done_at", n.doneAt)
        rows.int("gone", gone ? 1 : 0)
        rows.uint("ver", Versions.next())
        rows.end()
    }

    static func outboxItem(_ r: JSONValue) -> OutboxItem? {
        guard let id = r["id"]?.int64, let body = r["body"]?.stringValue.flatMap(Hex.decode) else { return nil }
        return OutboxItem(id: id, hook: r["hook"]?.stringValue ?? "", fingerprint: r["fingerprint"]?.stringValue ?? "", kind: r["kind"]?.stringValue ?? "",
                          body: body, created: r["created"]?.int64 ?? 0, nextAt: r["next_at"]?.int64 ?? 0, attempts: Int(r["attempts"]?.int64 ?? 0),
                          status: OutboxItem.Status(rawValue: r["status"]?.stringValue ?? "") ?? .pending, lastError: r["last_error"]?.stringValue,
                          doneAt: r["done_at"]?.int64)
    }

    public func dueNotifications(now: Micros, limit: Int) throws -> [OutboxItem] {
        try query("SELECT * FROM \(latestOutbox()) WHERE gone = 0 AND status = 'pending' AND next_at <= \(now) ORDER BY next_at, id LIMIT \(max(0, limit))")
            .compactMap(Self.outboxItem)
    }

    public func recentNotifications(limit: Int) throws -> [OutboxItem] {
        try query("SELECT * FROM \(latestOutbox()) WHERE gone = 0 ORDER BY id DESC LIMIT \(max(0, limit))").compactMap(Self.outboxItem)
    }

    public func recordDelivery(id: Int64, attempts: Int, outcome: DeliveryOutcome) async throws {
        try await write {
            guard var item = try await queryAsync("SELECT * FROM \(latestOutbox()) WHERE id = \(id) AND gone = 0").first.flatMap(Self.outboxItem) else { return }
            item.attempts = attempts
            switch outcome {
            case .delivered(let at):
                item.status = .delivered
                item.doneAt = at
                item.lastError = nil
            case .retry(let at, let error):
                item.nextAt = at
                item.lastError = error
            case .failed(let at, let error):
                item.status = .failed
                item.doneAt = at
                item.lastError = error
            }
            var rows = RowWriter()
            Self.outboxRow(&rows, item, gone: false)
            try await insert("alert_outbox", rows)
        }
    }

    // MARK: Access control

    private var tokensSQL: String { "SELECT * FROM \(t.table("access_tokens")) ORDER BY id, ver DESC LIMIT 1 BY id" }
    private var tokenUseSQL: String { "SELECT token_id, max(at) AS at FROM \(t.table("token_use")) GROUP BY token_id" }

    func latestTokens() throws -> [(id: Int64, token: AccessToken)] {
        Self.tokens(try query(tokensSQL), used: try query(tokenUseSQL))
    }

    /// `latestTokens` for async callers (writes, the server's access check): no thread waits.
    func latestTokensAsync() async throws -> [(id: Int64, token: AccessToken)] {
        async let tokens = queryAsync(tokensSQL)
        async let used = queryAsync(tokenUseSQL)
        return Self.tokens(try await tokens, used: try await used)
    }

    static func tokens(_ tokens: [JSONValue], used: [JSONValue]) -> [(id: Int64, token: AccessToken)] {
        var lastUse: [Int64: Micros] = [:]
        for u in used { if let id = u["token_id"]?.int64, let at = u["at"]?.int64 { lastUse[id] = at } }
        return tokens.compactMap { r in
            guard let id = r["id"]?.int64, let name = r["name"]?.stringValue, let scope = r["scope"]?.stringValue.flatMap(TokenScope.init(rawValue:)),
                  let hash = r["hash"]?.stringValue else { return nil }
            return (id, AccessToken(name: name, scope: scope, hash: hash, createdAt: r["created_at"]?.int64 ?? 0, expiresAt: r["expires_at"]?.int64,
                                    revokedAt: r["revoked_at"]?.int64, lastUsedAt: lastUse[id]))
        }.sorted { $0.id < $1.id }
    }

    func tokenRow(_ rows: inout RowWriter, id: Int64, _ token: AccessToken) {
        rows.begin()
        rows.int("id", id)
        rows.str("name", token.name)
        rows.str("scope", token.scope.rawValue)
        rows.str("hash", token.hash)
        rows.int("created_at", token.createdAt)
        rows.optInt("expires_at", token.expiresAt)
        rows.optInt("revoked_at", token.revokedAt)
        rows.uint("ver", Versions.next())
        rows.end()
    }

    func accessChanged() async throws {
        var row = RowWriter()
        row.begin()
        row.uint("seq", Versions.next())
        row.int("at", currentMicros())
        row.end()
        try await insert("access_changes", row)
    }

    public func addToken(_ token: AccessToken, audit: AuditEntry) async throws {
        try await write {
            let tokens = try await latestTokensAsync()
            if tokens.contains(where: { $0.token.name == token.name && $0.token.revokedAt == nil }) { throw AccessStoreError.nameTaken(token.name) }
            var rows = RowWriter()
            var added = token
            added.revokedAt = nil
            added.lastUsedAt = nil
            tokenRow(&rows, id: (tokens.map(\.id).max() ?? 0) + 1, added)
            try await insert("access_tokens", rows)
            try await accessChanged()
            try await insertAudit(audit)
        }
    }

    public func revokeToken(name: String, at: Micros, audit: AuditEntry) async throws -> Bool {
        try await write {
            guard let active = try await latestTokensAsync().first(where: { $0.token.name == name && $0.token.revokedAt == nil }) else { return false }
            var token = active.token
            token.revokedAt = at
            var rows = RowWriter()
            tokenRow(&rows, id: active.id, token)
            try await insert("access_tokens", rows)
            try await accessChanged()
            try await insertAudit(audit)
            return true
        }
    }

    public func recordTokenUse(_ lastUsed: [String: Micros]) async throws {
        guard !lastUsed.isEmpty else { return }
        try await write {
            let active = try await latestTokensAsync().filter { $0.token.revokedAt == nil }
            var rows = RowWriter()
            for (name, at) in lastUsed.sorted(by: { $0.key < $1.key }) {
                guard let id = active.first(where: { $0.token.name == name })?.id else { continue }
                rows.begin()
                rows.int("token_id", id)
                rows.int("at", at)
                rows.end()
            }
            try await insert("token_use", rows)
        }
    }

    public func accessTokens() throws -> [AccessToken] { try latestTokens().map(\.token) }

    public func accessVersion() throws -> Int64 {
        try query(accessVersionRead).first?["n"]?.int64 ?? 0
    }

    /// The server checks this on every request: an async round trip, no thread held while it waits.
    public func currentAccessVersion() async throws -> Int64 {
        try await queryAsync(accessVersionRead).first?["n"]?.int64 ?? 0
    }

    public func currentAccessTokens() async throws -> [AccessToken] {
        try await latestTokensAsync().map(\.token)
    }

    /// The count of `access_changes` rows, read on the first shard's node, which holds them all (the table
    /// is sharded by the constant 0): every request of a server checks it, and through the Distributed
    /// table it was a query of every shard (about 4 ms of a 20 ms trace lookup at 1,000,000 orders).
    private var accessVersionRead: Routed { routedFirst { "SELECT count() AS n FROM \($0("access_changes"))" } }

    public func appendAudit(_ entry: AuditEntry) async throws {
        try await write { try await insertAudit(entry) }
    }

    func insertAudit(_ e: AuditEntry) async throws {
        var row = RowWriter()
        row.begin()
        row.uint("seq", Versions.next())
        row.int("at", e.at)
        row.str("actor", e.actor)
        row.str("action", e.action)
        row.str("detail", e.detail)
        row.end()
        try await insert("audit_log", row)
    }

    public func auditEntries(limit: Int) throws -> [AuditEntry] {
        try query("SELECT at, actor, action, detail FROM \(t.table("audit_log")) ORDER BY seq DESC LIMIT \(max(0, limit))").map { r in
            AuditEntry(at: r["at"]?.int64 ?? 0, actor: r["actor"]?.stringValue ?? "", action: r["action"]?.stringValue ?? "", detail: r["detail"]?.stringValue ?? "")
        }
    }
}

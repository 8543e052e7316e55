import Foundation
import WaybillModel
import WaybillStore

extension SQLiteStore: AccessStore {
    public func addToken(_ token: AccessToken, audit: AuditEntry) async throws {
        let taken = LockedFlag()
        try await writer.transaction { c in
            let exists = try c.prepare("SELECT 1 FROM access_tokens WHERE name = ? AND revoked_at IS NULL").bind(1, token.name)
            defer { exists.reset() }
            if try exists.step() {
                taken.set()
                return
            }
            try c.prepare("INSERT INTO access_tokens(name, scope, hash, created_at, expires_at) VALUES(?, ?, ?, ?, ?)")
                .bind(1, token.name).bind(2, token.scope.rawValue).bind(3, token.hash).bind(4, token.createdAt).bind(5, token.expiresAt).run()
            try Self.bumpAccessVersion(c)
            try Self.insertAudit(c, audit)
        }
        if taken.value { throw AccessStoreError.nameTaken(token.name) }
    }

    public func revokeToken(name: String, at: Micros, audit: AuditEntry) async throws -> Bool {
        let revoked = LockedFlag()
        try await writer.transaction { c in
            try c.prepare("UPDATE access_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL").bind(1, at).bind(2, name).run()
            guard c.changes > 0 else { return }
            revoked.set()
            try Self.bumpAccessVersion(c)
            try Self.insertAudit(c, audit)
        }
        return revoked.value
    }

    public func recordTokenUse(_ lastUsed: [String: Micros]) async throws {
        guard !lastUsed.isEmpty else { return }
        try await writer.transaction { c in
            let s = try c.prepare("UPDATE access_tokens SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE name = ? AND revoked_at IS NULL")
            for (name, t) in lastUsed.sorted(by: { $0.key < $1.key }) {
                s.reset()
                try s.bind(1, t).bind(2, name).run()
            }
        }
    }

    public func accessTokens() throws -> [AccessToken] {
        try readers.with { c in
            let s = try c.prepare("SELECT name, scope, hash, created_at, expires_at, revoked_at, last_used_at FROM access_tokens ORDER BY id")
            defer { s.reset() }
            var out: [AccessToken] = []
            while try s.step() {
                guard let scope = TokenScope(rawValue: s.text(1)) else { continue }
                out.append(AccessToken(name: s.text(0), scope: scope, hash: s.text(2), createdAt: s.int64(3), expiresAt: s.optInt64(4),
                                       revokedAt: s.optInt64(5), lastUsedAt: s.optInt64(6)))
            }
            return out
        }
    }

    public func accessVersion() throws -> Int64 {
        try readers.with { c in
            let s = try c.prepare("SELECT value FROM meta WHERE key = 'access_version'")
            defer { s.reset() }
            return try s.step() ? Int64(s.text(0)) ?? 0 : 0
        }
    }

    public func appendAudit(_ entry: AuditEntry) async throws {
        try await writer.transaction { c in try Self.insertAudit(c, entry) }
    }

    public func auditEntries(limit: Int) throws -> [AuditEntry] {
        try readers.with { c in
            let s = try c.prepare("SELECT at, actor, action, detail FROM audit_log ORDER BY id DESC LIMIT ?").bind(1, Int64(limit))
            defer { s.reset() }
            var out: [AuditEntry] = []
            while try s.step() { out.append(AuditEntry(at: s.int64(0), actor: s.text(1), action: s.text(2), detail: s.text(3))) }
            return out
        }
    }

    static func bumpAccessVersion(_ c: Connection) throws {
        try c.exec("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'access_version'")
    }

    static func insertAudit(_ c: Connection, _ e: AuditEntry) throws {
        try c.prepare("INSERT INTO audit_log(at, actor, action, detail) VALUES(?, ?, ?, ?)")
            .bind(1, e.at).bind(2, e.actor).bind(3, e.action).bind(4, e.detail).run()
    }
}

/// A result set inside a writer transaction and read after it.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    func set() { lock.withLock { flag = true } }
    var value: Bool { lock.withLock { flag } }
}

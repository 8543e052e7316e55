import Foundation
import WaybillModel
import WaybillStore

/// `AccessStore`: tokens (as hashes) and the audit log.
extension StoreConformance {
    static let accessChecks: [Check] = [
        Check(name: "tokens: names unique among active ones, revocation, last use, the access version and the audit log, also after reopening",
              body: accessTokensAndAudit),
    ]

    static func accessTokensAndAudit(_ make: Factory) async throws {
        let storage = try make()
        func audit(_ t: Micros, _ action: String, _ detail: String) -> AuditEntry { AuditEntry(at: t, actor: "local:test", action: action, detail: detail) }
        do {
            let store = try storage.open()
            defer { store.close() }
            try expect(try store.accessTokens().isEmpty, "a new store has no tokens")
            let v0 = try store.accessVersion()
            try await store.addToken(AccessToken(name: "ci", scope: .read, hash: String(repeating: "a", count: 64), createdAt: 10, expiresAt: 1_000),
                                     audit: audit(10, "token.create", "ci"))
            let v1 = try store.accessVersion()
            try expect(v1 != v0, "adding a token changes the access version")
            do {
                try await store.addToken(AccessToken(name: "ci", scope: .admin, hash: String(repeating: "b", count: 64), createdAt: 11),
                                         audit: audit(11, "token.create", "ci again"))
                try expect(false, "a second active token of one name is refused")
            } catch AccessStoreError.nameTaken(let n) {
                try expect(n == "ci", "the refusal names the token")
            }
            try expect(try store.accessTokens().count == 1 && store.accessVersion() == v1, "a refused token stores nothing")
            try await store.recordTokenUse(["ci": 50])
            try await store.recordTokenUse(["ci": 40])
            try expect(try store.accessTokens().first?.lastUsedAt == 50, "last use keeps the latest time")
            try expect(try store.accessVersion() == v1, "recording use does not change the access version")
            try expect(try await store.revokeToken(name: "ci", at: 60, audit: audit(60, "token.revoke", "ci")), "revoking an active token")
            try expect(try store.accessVersion() != v1, "revoking changes the access version")
            try expect(!(try await store.revokeToken(name: "ci", at: 61, audit: audit(61, "token.revoke", "ci"))), "nothing left to revoke")
            try await store.addToken(AccessToken(name: "ci", scope: .admin, hash: String(repeating: "c", count: 64), createdAt: 70),
                                     audit: audit(70, "token.create", "ci"))
            try await store.appendAudit(audit(80, "retention", "removed 3 events"))
        }
        let store = try storage.open()
        defer { store.close() }
        let tokens = try store.accessTokens()
        try expect(tokens.map(\.name) == ["ci", "ci"] && tokens.map(\.scope) == [.read, .admin], "a revoked name may be used again; oldest first")
        try expect(tokens[0].revokedAt == 60 && tokens[0].expiresAt == 1_000 && tokens[0].hash == String(repeating: "a", count: 64),
                   "after reopening: revocation, expiry and hash as written")
        try expect(!tokens[0].isActive(at: 61) && tokens[1].isActive(at: 61), "active means neither revoked nor expired")
        let log = try store.auditEntries(limit: 10)
        try expect(log.map(\.action) == ["retention", "token.create", "token.revoke", "token.create"], "the audit log, newest first, without refused or no-op actions: \(log.map(\.action))")
        try expect(try store.auditEntries(limit: 2).count == 2, "the limit holds")
    }
}

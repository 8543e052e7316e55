import WaybillModel

/// What a token may do. `admin` implies `read`; `ingest` is only the collector routes.
public enum TokenScope: String, Sendable, CaseIterable, Codable {
    case ingest, read, admin

    public func allows(_ needed: TokenScope) -> Bool { self == needed || (self == .admin && needed == .read) }
}

/// A token as stored: never the token itself, only the SHA-256 of it (hex).
public struct AccessToken: Sendable, Equatable, Codable {
    public var name: String
    public var scope: TokenScope
    public var hash: String
    public var createdAt: Micros
    public var expiresAt: Micros?
    public var revokedAt: Micros?
    public var lastUsedAt: Micros?

    public init(name: String, scope: TokenScope, hash: String, createdAt: Micros, expiresAt: Micros? = nil, revokedAt: Micros? = nil,
                lastUsedAt: Micros? = nil)
    {
        self.name = name
        self.scope = scope
        self.hash = hash
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.lastUsedAt = lastUsedAt
    }

    /// Usable at `t`: not revoked, not expired.
    public func isActive(at t: Micros) -> Bool { revokedAt == nil && (expiresAt.map { t < $0 } ?? true) }
}

/// One administrative action: who (a token's name, or `local:USER` for the CLI on the store), what, when.
public struct AuditEntry: Sendable, Equatable, Codable {
    public var at: Micros
    public var actor: String
    public var action: String
    public var detail: String

    public init(at: Micros, actor: String, action: String, detail: String) {
        self.at = at
        self.actor = actor
        self.action = action
        self.detail = detail
    }
}

/// Tokens and the audit log.
///
/// Contract (every engine):
/// - `addToken` returns after it is committed; a name is unique among tokens not revoked (adding a
///   second active token of that name throws `AccessStoreError.nameTaken` and stores nothing). A revoked
///   name may be used again.
/// - `accessVersion()` changes with every token added or revoked, by any process sharing the store, so
///   a server's cache of tokens notices from its next read on; it does not change with anything else.
/// - `revokeToken` marks the active token of that name revoked at `at` and returns true; false when
///   there is none (nothing changes). Revoked tokens stay listed.
/// - `recordTokenUse` keeps, per name, the latest time given (never moves back) and does not change
///   `accessVersion()`.
/// - `accessTokens()` lists every token, oldest first; `auditEntries` the newest first, at most `limit`.
///   Audit entries are append-only and survive reopening.
public protocol AccessStore: Sendable {
    func addToken(_ token: AccessToken, audit: AuditEntry) async throws
    func revokeToken(name: String, at: Micros, audit: AuditEntry) async throws -> Bool
    func recordTokenUse(_ lastUsed: [String: Micros]) async throws
    func accessTokens() throws -> [AccessToken]
    func accessVersion() throws -> Int64
    func appendAudit(_ entry: AuditEntry) async throws
    func auditEntries(limit: Int) throws -> [AuditEntry]
    /// `accessVersion()` and `accessTokens()` for async callers (the server's check of every request):
    /// an engine whose reads wait on the network answers these without blocking a thread. The defaults
    /// call the synchronous readers (a local read).
    func currentAccessVersion() async throws -> Int64
    func currentAccessTokens() async throws -> [AccessToken]
}

extension AccessStore {
    public func currentAccessVersion() async throws -> Int64 { try accessVersion() }
    public func currentAccessTokens() async throws -> [AccessToken] { try accessTokens() }
}

public enum AccessStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    case nameTaken(String)

    public var description: String {
        switch self {
        case .nameTaken(let n): return "name: a token named '\(n)' exists; revoke it first or choose another name"
        }
    }
}

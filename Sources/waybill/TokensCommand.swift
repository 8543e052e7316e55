import ArgumentParser
import Foundation
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillSQLite
import WaybillServer
import WaybillStore

struct TokensCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens",
        abstract: "Access tokens: create (prints the token once), list, revoke. Scopes: ingest, read, admin (admin implies read).",
        subcommands: [TokensCreate.self, TokensList.self, TokensRevoke.self])
}

/// Token commands work on the store directly (whoever can write the store file is its administrator).
struct TokenStoreOptions: ParsableArguments {
    @Option(name: .long, help: "Embedded store file (default: $WAYBILL_DB or ./waybill.db).") var db: String?
    @Option(name: .customLong("store"), help: "A ClickHouse store instead of --db: clickhouse://USER@HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME] (password from $WAYBILL_CLICKHOUSE_PASSWORD).")
    var storeURL: String?
    var dbPath: String { db ?? ProcessInfo.processInfo.environment["WAYBILL_DB"] ?? "waybill.db" }
    /// The store `--db` or `--store` names (validated: they exclude each other).
    var location: StoreLocation { (try? StoreLocation.resolve(db: db, store: storeURL)) ?? .embedded(path: dbPath) }

    func validate() throws {
        do { _ = try StoreLocation.resolve(db: db, store: storeURL) } catch { throw ValidationError("\(error)") }
    }

    /// Who the audit log names for actions taken here.
    static var actor: String { "local:" + (ProcessInfo.processInfo.environment["USER"] ?? NSUserName()) }
}

struct TokensCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a token; it is printed once, as the last line of stdout, and stored only as a hash.")

    @Option(help: "ingest (POST /v1/events, /v1/traces), read (query API, pages, /metrics) or admin (also the audit log).")
    var scope: String
    @Option(help: "A name for listing and revoking (default: SCOPE-YYYYMMDD-HHMMSS).") var name: String?
    @Option(help: "Lifetime, e.g. 90d or 12h (default: never expires).") var expires: String?
    @OptionGroup var store: TokenStoreOptions

    func run() async throws {
        guard let s = TokenScope(rawValue: scope) else { throw CLIError("--scope: must be ingest, read or admin") }
        let now = currentMicros()
        var expiresAt: Micros?
        if let e = expires {
            guard let d = DurationText.parse(e), d > 0 else { throw CLIError("--expires: must be a positive duration like 90d or 12h") }
            expiresAt = now + d
        }
        let label = name ?? "\(s.rawValue)-" + RFC3339.format(now).prefix(19).filter { $0.isNumber || $0 == "T" }.replacingOccurrences(of: "T", with: "-")
        guard !label.isEmpty, label.count <= 128, label.allSatisfy({ $0.isLetter || $0.isNumber || "-_.:".contains($0) }) else {
            throw CLIError("--name: 1 to 128 letters, digits, '-', '_', '.' or ':'")
        }
        let token = AccessTokens.generate()
        // The first token is usually made before the server ever ran: create the store when missing.
        let db = try await store.location.open()
        defer { db.close() }
        let stored = AccessToken(name: label, scope: s, hash: AccessTokens.hash(token), createdAt: now, expiresAt: expiresAt)
        do {
            try await db.addToken(stored, audit: AuditEntry(at: now, actor: TokenStoreOptions.actor, action: "token.create",
                                                            detail: "\(label) scope=\(s.rawValue)" + (expiresAt.map { " expires=\(RFC3339.format($0))" } ?? "")))
        } catch let e as AccessStoreError {
            throw CLIError("--\(e.description)")
        }
        printErr("created token '\(label)' (scope \(s.rawValue)\(expiresAt.map { ", expires \(RFC3339.format($0))" } ?? "")); it is shown only now:")
        print(token)
    }
}

struct TokensList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Tokens: name, scope, created, expires, last used, revoked (never the token).")
    @OptionGroup var store: TokenStoreOptions
    @OptionGroup var output: FormatOptions

    func run() async throws {
        let db = try await store.location.openForReading()
        defer { db.close() }
        let tokens = try db.accessTokens()
        if output.isJSON {
            let doc: JSONValue = .array(tokens.map { t in
                func time(_ v: Micros?) -> JSONValue { v.map { .string(RFC3339.format($0)) } ?? .null }
                return ["name": .string(t.name), "scope": .string(t.scope.rawValue), "created_at": time(t.createdAt),
                        "expires_at": time(t.expiresAt), "last_used_at": time(t.lastUsedAt), "revoked_at": time(t.revokedAt)]
            })
            writeStdout(doc.jsonBytes + [0x0A])
            return
        }
        if tokens.isEmpty {
            print("no tokens: the server answers openly on loopback; create one with `waybill tokens create --scope admin`")
            return
        }
        let now = currentMicros()
        var rows = [["NAME", "SCOPE", "CREATED", "EXPIRES", "LAST USED", "STATUS"]]
        for t in tokens {
            let status = t.revokedAt.map { "revoked \(RFC3339.format($0))" } ?? (t.isActive(at: now) ? "active" : "expired")
            rows.append([t.name, t.scope.rawValue, RFC3339.format(t.createdAt), t.expiresAt.map(RFC3339.format) ?? "never",
                         t.lastUsedAt.map(RFC3339.format) ?? "-", status])
        }
        print(table(rows), terminator: "")
    }
}

struct TokensRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a token by name; a running server refuses it from its next request on.")
    @Argument(help: "The token's name (see `waybill tokens list`).") var name: String
    @OptionGroup var store: TokenStoreOptions

    func run() async throws {
        let db = try await store.location.openForReading()
        defer { db.close() }
        let now = currentMicros()
        guard try await db.revokeToken(name: name, at: now, audit: AuditEntry(at: now, actor: TokenStoreOptions.actor, action: "token.revoke", detail: name)) else {
            throw CLIError("no active token named '\(name)' (see `waybill tokens list`)")
        }
        print("revoked '\(name)'")
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "Administrative actions, newest first: tokens created and revoked, retention runs.")
    @Option(help: "How many entries (1-10000).") var limit = 100
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: FormatOptions

    func run() async throws {
        let doc = try await store.withQueries { q in try await q.audit(limit: AuditDocument.limit(String(limit))) }
        if output.isJSON {
            try writeDocument(doc)
            return
        }
        if doc.entries.isEmpty {
            print("no administrative actions recorded")
            return
        }
        print(table([["AT", "ACTOR", "ACTION", "DETAIL"]] + doc.entries.map { [$0.at, $0.actor, $0.action, $0.detail] }), terminator: "")
    }
}

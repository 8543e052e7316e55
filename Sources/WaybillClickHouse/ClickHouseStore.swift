// The ClickHouse engine (issue 12): the storage protocols of WaybillStore over ClickHouse's HTTP interface.
import Foundation
import WaybillKPI
import WaybillModel
import WaybillStore

/// The scale-out engine. SKELETON: only `open` and the URL exist yet; every storage call throws
/// `StoreError.unavailable` until the engine lands (the entry point is fixed for the CLI's `--store`).
public final class ClickHouseStore: WaybillStore, AlertStore, DeadlineReader, WorkflowStore, @unchecked Sendable {
    public let url: ClickHouseURL

    init(url: ClickHouseURL, rollup: (any FactsRollup)?) throws {
        self.url = url
    }

    /// Opens (and creates, on every node of the cluster) the store at `url`; `environment` may hold the
    /// password (`WAYBILL_CLICKHOUSE_PASSWORD`). `rollup` keeps the KPI rollups (the KPI engine's by default).
    public static func open(url: String, environment: [String: String], rollup: (any FactsRollup)? = KPIFactsRollup()) async throws -> ClickHouseStore {
        let parsed = try ClickHouseURL(parsing: url, environment: environment)
        return try ClickHouseStore(url: parsed, rollup: rollup)
    }

    static let missing = StoreError.unavailable("the ClickHouse engine is not built yet")

    public func append(_ events: [CloudEvent]) async throws -> AppendResult { throw Self.missing }
    public func appendSpans(_ spans: [Span]) async throws -> AppendResult { throw Self.missing }
    public func spans(startingIn range: Range<Micros>, limit: Int) throws -> [Span] { throw Self.missing }
    public func trace(key: String) throws -> Trace? { throw Self.missing }
    public func facts(orderID: String) throws -> OrderFacts? { throw Self.missing }
    public func searchOrders(_ query: OrderQuery) throws -> OrderPage { throw Self.missing }
    public func rollupRows(dimension: String, in ranges: [Range<Micros>]) throws -> [(key: RollupKey, bytes: [UInt8])] { throw Self.missing }
    public func kpiFacts(in ranges: [Range<Micros>]) throws -> [OrderFacts] { throw Self.missing }
    public func addToken(_ token: AccessToken, audit: AuditEntry) async throws { throw Self.missing }
    public func revokeToken(name: String, at: Micros, audit: AuditEntry) async throws -> Bool { throw Self.missing }
    public func recordTokenUse(_ lastUsed: [String: Micros]) async throws { throw Self.missing }
    public func accessTokens() throws -> [AccessToken] { throw Self.missing }
    public func accessVersion() throws -> Int64 { throw Self.missing }
    public func appendAudit(_ entry: AuditEntry) async throws { throw Self.missing }
    public func auditEntries(limit: Int) throws -> [AuditEntry] { throw Self.missing }
    public func stats() throws -> StoreStats { throw Self.missing }
    public func deleteEvents(before cutoff: Micros) async throws -> Int { throw Self.missing }
    public var storageHealth: StorageHealth { StorageHealth() }
    public func close() {}
    public func alertRecords() throws -> [(fingerprint: String, record: [UInt8])] { throw Self.missing }
    public func commitAlerts(_ commit: AlertCommit) async throws { throw Self.missing }
    public func dueNotifications(now: Micros, limit: Int) throws -> [OutboxItem] { throw Self.missing }
    public func recentNotifications(limit: Int) throws -> [OutboxItem] { throw Self.missing }
    public func recordDelivery(id: Int64, attempts: Int, outcome: DeliveryOutcome) async throws { throw Self.missing }
    public func prepareDeadlines(after: Stage) async throws {}
    public func overdueOrders(after: Stage, expect: Stage, cutoff: Micros, asOf: Micros, replay: Bool,
                              groupBy: OverdueGrouping, limit: Int) throws -> [OverdueGroup] { throw Self.missing }
    public func saveCheckpoint(name: String, bytes: [UInt8]) async throws { throw Self.missing }
    public func loadCheckpoint(name: String) throws -> StoredCheckpoint? { throw Self.missing }
}

import Foundation
import Testing
import WaybillModel
import WaybillStore
@testable import WaybillSQLite
import WaybillTestSupport

/// Storage faults that may pass (`StoreError.fault`, `WaybillStore.storageHealth`), with the one fault a
/// test can cause without privileges: another process holding the write lock past the busy timeout.
/// The disk-full case, on a real small filesystem, is in WaybillServerTests (`DiskFullTests`).
@Suite struct StorageFaultTests {
    static func events(_ order: String, _ n: Int) -> [CloudEvent] {
        (0..<n).map { i in
            CloudEvent(id: "\(order)-\(i)", source: "oms", type: i == 0 ? "order.accepted" : "order.note",
                       time: t("2026-11-23T14:00:00Z") + Micros(i) * second, subject: order, data: ["n": .number(Double(i))])
        }
    }

    static func options() -> SQLiteStore.Options {
        var o = SQLiteStore.Options()
        o.busyTimeoutMillis = 100
        o.faultProbeSeconds = 0.2
        return o
    }

    func busyFault(_ body: () async throws -> Void) async -> StorageFault? {
        do {
            try await body()
            return nil
        } catch StoreError.fault(let f) {
            return f
        } catch {
            Issue.record("expected a storage fault, got \(error)")
            return nil
        }
    }

    @Test func sqliteCodesThatMayPassAreFaultsAndTheRestEngineErrors() {
        #expect(StorageFault.Kind(sqliteCode: 13) == .diskFull)  // SQLITE_FULL
        #expect(StorageFault.Kind(sqliteCode: 10) == .ioError)  // SQLITE_IOERR
        #expect(StorageFault.Kind(sqliteCode: 10 | (4 << 8)) == .ioError)  // SQLITE_IOERR_FSYNC
        #expect(StorageFault.Kind(sqliteCode: 10 | (12 << 8)) == .outOfMemory)  // SQLITE_IOERR_NOMEM
        #expect(StorageFault.Kind(sqliteCode: 5) == .busy)  // SQLITE_BUSY
        #expect(StorageFault.Kind(sqliteCode: 5 | (2 << 8)) == .busy)  // SQLITE_BUSY_SNAPSHOT
        #expect(StorageFault.Kind(sqliteCode: 6) == .busy)  // SQLITE_LOCKED
        #expect(StorageFault.Kind(sqliteCode: 14) == .cannotOpen)  // SQLITE_CANTOPEN
        #expect(StorageFault.Kind(sqliteCode: 8) == .readOnly)  // SQLITE_READONLY
        #expect(StorageFault.Kind(sqliteCode: 11) == nil)  // SQLITE_CORRUPT
        #expect(StorageFault.Kind(sqliteCode: 19) == nil)  // SQLITE_CONSTRAINT
        #expect(StorageFault.Kind(sqliteCode: 26) == nil)  // SQLITE_NOTADB
        #expect(StorageFault(kind: .busy, message: "database is locked").retryAfterSeconds == 1)
        #expect(StorageFault(kind: .diskFull, message: "database or disk is full").retryAfterSeconds == 5)
    }

    /// Appends and span appends fail with a `busy` fault while another process holds the lock, store
    /// nothing, show in `storageHealth` (with since when, counted), and succeed once the lock is gone;
    /// the idle writer's probe clears the fault without any client write.
    @Test func aLockHeldPastTheBusyTimeoutIsAFaultThatPassesByItself() async throws {
        let path = temporaryDatabase()
        let store = try SQLiteStore(path: path, options: Self.options())
        defer { store.close() }
        #expect(try await store.append(Self.events("ORD-A", 5)) == AppendResult(accepted: 5))
        #expect(store.storageHealth == StorageHealth())

        let other = try Connection(path: path)  // as another process would hold it
        try other.exec("BEGIN IMMEDIATE")
        let before = currentMicros()
        let f = await busyFault { _ = try await store.append(Self.events("ORD-B", 5)) }
        #expect(f?.kind == .busy)
        #expect(f?.message == "database is locked")
        let spanFault = await busyFault {
            _ = try await store.appendSpans([Span(traceID: "0af7651916cd43dd8448eb211c80319c", spanID: "b7ad6b7169203331",
                                                  service: "oms", name: "accept", start: 1, end: 2, attributes: ["order.id": "ORD-B"])])
        }
        #expect(spanFault?.kind == .busy)
        let health = store.storageHealth
        #expect(health.fault?.kind == .busy)
        #expect((health.since ?? 0) >= before)
        #expect(health.faults == [.busy: 2])
        // The probe keeps failing while the lock is held; it confirms the fault without counting it.
        try await Task.sleep(for: .milliseconds(700))
        #expect(store.storageHealth.faults == [.busy: 2])
        #expect(store.storageHealth.since == health.since)

        try other.exec("ROLLBACK")
        let recovered = try await eventually(10) { store.storageHealth.isHealthy ? true : nil }
        #expect(recovered == true, "the writer's probe did not clear the fault")
        #expect(store.storageHealth.faults == [.busy: 2])
        // Nothing of the refused calls was stored: the same events are new now.
        #expect(try store.trace(key: "ORD-B") == nil)
        #expect(try await store.append(Self.events("ORD-B", 5)) == AppendResult(accepted: 5))
        #expect(try store.trace(key: "ORD-A")?.events.count == 5)
        #expect(try store.facts(orderID: "ORD-B")?.eventCount == 5)
    }

    /// Appends that share a group-commit transaction fail together and store nothing; retried, every
    /// event is new and the facts count each once.
    @Test func aFaultRollsBackTheWholeGroupCommit() async throws {
        let path = temporaryDatabase()
        let store = try SQLiteStore(path: path, options: Self.options())
        defer { store.close() }
        let other = try Connection(path: path)
        store.writer.setPaused(true)
        let calls = (0..<4).map { i in Task { try await store.append(Self.events("ORD-G\(i)", 20)) } }
        while store.writer.queuedEvents < 80 { try await Task.sleep(for: .milliseconds(5)) }
        try other.exec("BEGIN IMMEDIATE")
        store.writer.setPaused(false)  // the four appends go in one transaction
        for c in calls {
            let f = await busyFault { _ = try await c.value }
            #expect(f?.kind == .busy)
        }
        try other.exec("ROLLBACK")
        #expect(try store.stats().events == 0)
        for i in 0..<4 {
            #expect(try await store.append(Self.events("ORD-G\(i)", 20)) == AppendResult(accepted: 20))
            #expect(try store.facts(orderID: "ORD-G\(i)")?.eventCount == 20)
        }
        #expect(store.storageHealth.isHealthy)
    }
}

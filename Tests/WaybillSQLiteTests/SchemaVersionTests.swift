import Foundation
import Testing
import WaybillModel
import WaybillStore
@testable import WaybillSQLite
import WaybillTestSupport

/// A store whose schema is newer than this build's is refused at open, untouched: an older waybill
/// would misread rows of later formats (e.g. 32-bit idempotency hashes probed with full ones, so
/// resends would be stored twice).
@Suite struct SchemaVersionTests {
    @Test func aNewerStoreIsRefusedAndLeftAsItWas() async throws {
        let path = temporaryDatabase()
        let event = StorageFaultTests.events("SO-1", 1)
        do {
            let s = try SQLiteStore(path: path)
            _ = try await s.append(event)
            s.close()
        }
        let newer = Schema.migrations.count + 1
        try Connection(path: path).exec("UPDATE meta SET value = '\(newer)' WHERE key = 'schema_version'")
        #expect {
            _ = try SQLiteStore(path: path)
        } throws: { error in
            "\(error)".contains("schema version is \(newer), newer than this waybill's \(Schema.migrations.count)")
        }
        // Still the newer version, not migrated or rewritten.
        let check = try Connection(path: path)
        let st = try check.prepare("SELECT value FROM meta WHERE key = 'schema_version'")
        #expect(try st.step())
        #expect(st.text(0) == String(newer))
        st.reset()
        // The current version opens as before, and the event is there.
        try Connection(path: path).exec("UPDATE meta SET value = '\(Schema.migrations.count)' WHERE key = 'schema_version'")
        let s = try SQLiteStore(path: path)
        #expect(try s.stats().events == 1)
        s.close()
    }
}

import Testing
import WaybillModel
@testable import WaybillClickHouse

@Suite struct ClickHouseURLTests {
    @Test func fullURL() throws {
        let u = try ClickHouseURL(parsing: "clickhouse://waybill:p%40ss@ch1:8123,ch2:9123,[::1]:8124/wb_prod?cluster=two_shards")
        #expect(u.user == "waybill" && u.password == "p@ss")
        #expect(u.hosts == [.init(name: "ch1", port: 8123), .init(name: "ch2", port: 9123), .init(name: "::1", port: 8124)])
        #expect(u.database == "wb_prod" && u.cluster == "two_shards")
        #expect(u.description == "clickhouse://waybill:***@ch1:8123,ch2:9123,[::1]:8124/wb_prod?cluster=two_shards")
        #expect(!u.description.contains("p@ss") && !u.description.contains("p%40ss"))
    }

    @Test func defaultsAndEnvironmentPassword() throws {
        let u = try ClickHouseURL(parsing: "clickhouse://localhost/waybill", environment: [ClickHouseURL.passwordVariable: "envpw"])
        #expect(u.user == "default" && u.password == "envpw" && u.hosts == [.init(name: "localhost", port: 8123)] && u.cluster == nil)
        #expect(u.description == "clickhouse://default:***@localhost:8123/waybill")
        // A password in the URL wins over the environment.
        let v = try ClickHouseURL(parsing: "clickhouse://u:url@h:1/db", environment: [ClickHouseURL.passwordVariable: "envpw"])
        #expect(v.password == "url")
        let w = try ClickHouseURL(parsing: "clickhouse://u@h:1/db")
        #expect(w.password == nil && w.description == "clickhouse://u@h:1/db")
        #expect(ClickHouseURL.isClickHouse("ClickHouse://h/db") && !ClickHouseURL.isClickHouse("/var/lib/waybill.db"))
    }

    @Test(arguments: [
        ("http://h:8123/db", "store.scheme"),
        ("clickhouse://h:8123", "store.database"),
        ("clickhouse://h:8123/", "store.database"),
        ("clickhouse://h:8123/1db", "store.database"),
        ("clickhouse://h:8123/db;drop", "store.database"),
        ("clickhouse://h:99999/db", "store.port"),
        ("clickhouse://h:abc/db", "store.port"),
        ("clickhouse://h:8123,/db", "store.host"),
        ("clickhouse://h o:8123/db", "store.host"),
        ("clickhouse://[::1:8123/db", "store.host"),
        ("clickhouse://:pw@h:8123/db", "store.user"),
        ("clickhouse://h:8123/db?cluster=", "store.cluster"),
        ("clickhouse://h:8123/db?cluster=a'b", "store.cluster"),
        ("clickhouse://h:8123/db?shards=2", "store.shards"),
    ])
    func refused(_ text: String, _ field: String) {
        #expect(throws: FieldError.self) { try ClickHouseURL(parsing: text) }
        do {
            _ = try ClickHouseURL(parsing: text)
        } catch {
            #expect(error.field == field, "\(text): \(error)")
            #expect(!error.description.contains("pw"))
        }
    }
}

import Foundation
import Testing

/// The test cluster itself: what the other ClickHouse tests rely on (two shards that answer, a Distributed
/// table spreads rows over both, only the `waybill` user with its password gets in).
@Suite struct ClickHouseClusterTests {
    @Test func twoShardsAnswerAndADistributedTableSpreadsRowsOverBoth() async throws {
        guard let cluster = await ClickHouseCluster.shared(test: "ClickHouseClusterTests.twoShards") else { return }
        #expect(cluster.nodes.count == 2)
        let db = ClickHouseCluster.freshDatabase("harness")
        for node in 0..<2 {
            _ = try await cluster.query("CREATE DATABASE IF NOT EXISTS \(db)", node: node)
            _ = try await cluster.query("CREATE TABLE IF NOT EXISTS \(db).t (k String, v UInt64) ENGINE = MergeTree ORDER BY k", node: node)
            _ = try await cluster.query(
                "CREATE TABLE IF NOT EXISTS \(db).t_all AS \(db).t ENGINE = Distributed(\(ClickHouseCluster.clusterName), \(db), t, cityHash64(k))", node: node)
        }
        let rows = (0..<200).map { #"{"k":"ORD-\#($0)","v":\#($0)}"# }.joined(separator: "\n")
        _ = try await cluster.query("INSERT INTO \(db).t_all FORMAT JSONEachRow\n" + rows, node: 0, settings: "insert_distributed_sync=1")
        let local0 = Int(try await cluster.query("SELECT count() FROM \(db).t", node: 0).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        let local1 = Int(try await cluster.query("SELECT count() FROM \(db).t", node: 1).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(local0 + local1 == 200)
        #expect(local0 > 0 && local1 > 0, "both shards hold rows: \(local0) and \(local1)")
        for node in 0..<2 {
            let all = try await cluster.query("SELECT count(), sum(v) FROM \(db).t_all", node: node)
            #expect(all.trimmingCharacters(in: .whitespacesAndNewlines) == "200\t\((0..<200).reduce(0, +))")
        }
        let url = cluster.url(database: db)
        #expect(url.hasPrefix("clickhouse://waybill:\(cluster.password)@127.0.0.1:\(cluster.nodes[0].httpPort),127.0.0.1:\(cluster.nodes[1].httpPort)/\(db)"))
        #expect(url.hasSuffix("?cluster=waybill"))
        #expect(!cluster.url(database: db, withPassword: false).contains(cluster.password))
        _ = try await cluster.query("DROP DATABASE IF EXISTS \(db)", node: 0)
        _ = try await cluster.query("DROP DATABASE IF EXISTS \(db)", node: 1)
    }

    @Test func onlyTheWaybillUserWithItsPasswordGetsIn() async throws {
        guard let cluster = await ClickHouseCluster.shared(test: "ClickHouseClusterTests.onlyTheWaybillUser") else { return }
        for node in cluster.nodes {
            // No credentials: ClickHouse would use `default`, which does not exist here.
            await #expect(throws: (any Error).self) { try await ClickHouseCluster.post("SELECT 1", port: node.httpPort, user: nil, password: nil) }
            await #expect(throws: (any Error).self) { try await ClickHouseCluster.post("SELECT 1", port: node.httpPort, user: "default", password: "") }
            await #expect(throws: (any Error).self) { try await ClickHouseCluster.post("SELECT 1", port: node.httpPort, password: "wrong") }
            let ok = try await ClickHouseCluster.post("SELECT 1", port: node.httpPort, password: cluster.password)
            #expect(ok.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        }
        // Every port is bound to 127.0.0.1 only (the listening sockets in /proc/net/tcp, address in hex).
        if let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) {
            for node in cluster.nodes {
                for port in [node.httpPort, node.tcpPort, node.interserverPort] {
                    let hex = String(format: "%04X", port)
                    let listening = table.split(separator: "\n").filter { $0.contains(":\(hex) ") && $0.split(separator: " ")[3] == "0A" }
                    #expect(!listening.isEmpty, "port \(port) is listening")
                    #expect(listening.allSatisfy { $0.split(separator: " ")[1].hasPrefix("0100007F:") }, "port \(port) on 127.0.0.1 only: \(listening)")
                }
            }
        }
    }
}

import Foundation
import Testing
import WaybillModel
import WaybillTestSupport

/// `waybill ingest` reads its input a block at a time (plain or gzip, also several gzip members), so a
/// batch or a line may straddle blocks; line numbers of rejections still count from the file's start.
@Suite struct IngestStreamingTests {
    @Test func largeNDJSONPlainAndGzipStreamWithExactLineNumbers() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else {
            Issue.record("waybill binary not found at \(ServerProcess.binary.path)")
            return
        }
        guard FileManager.default.isExecutableFile(atPath: "/bin/gzip") else {
            print("SKIPPED largeNDJSONPlainAndGzipStreamWithExactLineNumbers: /bin/gzip is missing")
            return
        }
        let db = temporaryDatabase()
        let dir = URL(fileURLWithPath: db).deletingLastPathComponent()
        // 25,000 lines (over 5 MiB, more than one 4 MiB read block), 500 orders interleaved, a bad line
        // at line 20,001, a blank line, and no newline after the last line.
        var lines: [String] = []
        for i in 0..<25_000 {
            let minutes = i / 10
            let time = RFC3339.format(t("2026-11-20T08:00:00Z") + Micros(minutes) * minute)
            lines.append(eventJSON("e-\(i)", "order.note", time, "ORD-\(i % 500)", data: ["pad": .string(String(repeating: "x", count: 120)), "i": .number(Double(i))]))
        }
        lines[20_000] = #"{"specversion":"1.0","source":"oms"}"#
        lines.insert("", at: 10)
        let text = lines.joined(separator: "\n")
        let plain = dir.appendingPathComponent("events.ndjson")
        try text.write(to: plain, atomically: true, encoding: .utf8)

        let first = try await CLIRun.run(["ingest", plain.path, "--db", db, "--batch", "7000"])
        #expect(first.status == 1)
        #expect(first.stdout.contains("accepted 24999, duplicates 0, rejected 1"), "\(first.stdout)")
        #expect(first.stderr.contains("line 20002: id: required attribute is missing"), "\(first.stderr)")

        // The same lines as two concatenated gzip members, cut in the middle of a line: all duplicates.
        let cut = text.utf8.count / 2 + 7
        let bytes = Array(text.utf8)
        var gz = Data()
        for part in [bytes[..<cut], bytes[cut...]] {
            let f = dir.appendingPathComponent("part")
            try Data(part).write(to: f)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/gzip")
            p.arguments = ["-f", f.path]
            try p.run()
            p.waitUntilExit()
            gz += try Data(contentsOf: dir.appendingPathComponent("part.gz"))
        }
        let gzFile = dir.appendingPathComponent("events.ndjson.gz")
        try gz.write(to: gzFile)
        let again = try await CLIRun.run(["ingest", gzFile.path, "--db", db, "--json"])
        #expect(again.status == 1)
        #expect(again.json?["accepted"] == 0)
        #expect(again.json?["duplicates"] == 24_999)
        #expect(again.json?["rejected"]?.arrayValue?.first?["position"] == "line 20002")

        // A truncated gzip file is refused with a message, not a crash.
        let truncated = dir.appendingPathComponent("truncated.gz")
        try gz.prefix(gz.count / 3).write(to: truncated)
        let bad = try await CLIRun.run(["ingest", truncated.path, "--db", db])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("gzip"), "\(bad.stderr)")

        let trace = try await CLIRun.run(["trace", "ORD-499", "--db", db, "--format", "json"])
        #expect(trace.json?["events"]?.arrayValue?.count == 50)
    }
}

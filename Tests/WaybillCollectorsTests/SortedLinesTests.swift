import Foundation
import Testing
import WaybillModel
@testable import WaybillCollectors

/// The external sort behind `waybill ingest --sort`: lines come back ordered by (key, line number) with
/// their numbers, whether the input fits one run in memory or spills many to temporary files.
@Suite struct SortedLinesTests {
    /// Key: the integer before the first `:`; no key (nil) where there is none.
    static func key(_ line: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        return Int64(String(decoding: UnsafeBufferPointer(rebasing: line[..<colon]), as: UTF8.self))
    }

    static func keyOf(_ line: String) -> Int64 {
        Array(line.utf8).withUnsafeBufferPointer { key($0) } ?? Int64.min
    }

    /// Sorts `lines` through SortedLines with runs of `runBytes` and reads them back in batches of `batch`.
    static func sorted(_ lines: [String], runBytes: Int, batch: Int) throws -> [(line: String, number: Int)] {
        let s = SortedLines(directory: NSTemporaryDirectory(), runBytes: runBytes, key: key)
        for (i, l) in lines.enumerated() {
            try Array(l.utf8).withUnsafeBufferPointer { try s.add($0, number: i) }
        }
        try s.finish()
        #expect(s.count == lines.count)
        var out: [(String, Int)] = []
        while let (bytes, numbers) = try s.next(maxLines: batch) {
            #expect(numbers.count <= batch)
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasSuffix("\n"))
            let got = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
            #expect(got.count == numbers.count)
            out += zip(got, numbers).map { ($0, $1) }
        }
        return out
    }

    /// What the sort must give: a stable sort by key with keyless lines first.
    static func expected(_ lines: [String]) -> [(line: String, number: Int)] {
        lines.enumerated().map { (line: $1, number: $0) }.sorted {
            let a = keyOf($0.line), b = keyOf($1.line)
            return a != b ? a < b : $0.number < $1.number
        }
    }

    static func shuffledLines(count: Int, seed: UInt64) -> [String] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { i in
            switch rng.next() % 10 {
            case 0: return "no key here \(i)"
            default:
                let k = Int64(rng.next() % 500) - 100   // repeated keys and negative ones
                return "\(k):payload-\(i)-" + String(repeating: "x", count: Int(rng.next() % 40))
            }
        }
    }

    @Test(arguments: [
        (lines: 3_000, runBytes: 64 << 20, batch: 1000),  // one run, in memory
        (lines: 3_000, runBytes: 2_000, batch: 7),        // dozens of spilled runs, small batches
        (lines: 300, runBytes: 1, batch: 1),              // a run per line
    ])
    func ordersByKeyThenLineNumber(lines count: Int, runBytes: Int, batch: Int) throws {
        let lines = Self.shuffledLines(count: count, seed: UInt64(runBytes))
        let got = try Self.sorted(lines, runBytes: runBytes, batch: batch)
        let want = Self.expected(lines)
        #expect(got.map(\.line) == want.map(\.line))
        #expect(got.map(\.number) == want.map(\.number))
        // Every line comes back once, with its own number.
        #expect(Set(got.map(\.number)).count == lines.count)
        #expect(got.allSatisfy { lines[$0.number] == $0.line })
    }

    @Test func keylessLinesComeFirstInInputOrder() throws {
        let lines = ["5:a", "no key", "1:b", "also none", "1:c", "-3:d"]
        let got = try Self.sorted(lines, runBytes: 4, batch: 2)
        #expect(got.map(\.line) == ["no key", "also none", "-3:d", "1:b", "1:c", "5:a"])
        #expect(got.map(\.number) == [1, 3, 5, 2, 4, 0])
    }

    @Test func linesLongerThanTheReadBufferOfARun() throws {
        let long = "3:" + String(repeating: "y", count: 2_500_000)   // over a run's 1 MiB read buffer
        let lines = ["9:a", long, "1:b", "2:" + String(repeating: "z", count: 1_200_000), "0:c"]
        let got = try Self.sorted(lines, runBytes: 100, batch: 2)
        #expect(got.map(\.number) == [4, 2, 3, 1, 0])
        #expect(got.map(\.line) == [lines[4], lines[2], lines[3], long, lines[0]])
    }

    @Test func emptyInputAndEmptyLines() throws {
        #expect(try Self.sorted([], runBytes: 10, batch: 5).isEmpty)
        let got = try Self.sorted(["2:x", "", "1:y"], runBytes: 1, batch: 10)
        #expect(got.map(\.line) == ["", "1:y", "2:x"])
    }

    @Test func anUnwritableDirectoryIsAClearError() throws {
        let s = SortedLines(directory: "/nonexistent-waybill-dir", runBytes: 1, key: Self.key)
        try Array("1:a".utf8).withUnsafeBufferPointer { try s.add($0, number: 0) }
        let error = #expect(throws: SortedLinesError.self) {
            try Array("2:b".utf8).withUnsafeBufferPointer { try s.add($0, number: 1) }
        }
        #expect(error?.description.contains("/nonexistent-waybill-dir") == true)
    }
}

import Foundation
import Glibc

/// Lines (of an NDJSON input) in the order of a key, an event's time, with memory bounded by
/// `runBytes` whatever the input's size: an external merge sort. Lines are gathered into runs of at most
/// `runBytes`; a run is sorted in memory by (key, line number) and, when the input holds more than one,
/// written to a temporary file that is unlinked as soon as it is made (it goes with the process, even
/// on `kill -9`); `next` merges the runs. A line keeps its number in the input, so a rejection still
/// names the line it came from. Lines without a key (nil) come first, in input order.
///
/// The bulk load sorts an input whose events arrive far out of time order (`waybill ingest --sort`):
/// events of one order then meet in the same event blocks, which compress as well as a time-ordered
/// input's and touch fewer pages.
public final class SortedLines {
    public typealias Key = (UnsafeBufferPointer<UInt8>) -> Int64?

    /// One line of a run: where its bytes are in the run's buffer.
    struct Record {
        var key: Int64
        var number: Int64
        var start: Int
        var count: Int
    }

    private let directory: String
    private let runBytes: Int
    private let key: Key
    private var buffer: [UInt8] = []
    private var records: [Record] = []
    /// The spilled runs' files, in the order written; read through `spilled` once the input ends.
    private var runs: [Int32] = []
    private var spilled: [RunReader] = []
    private var inMemory: (buffer: [UInt8], records: [Record], next: Int)?
    private var heap: [Int] = []
    private var finished = false
    /// Lines added.
    public private(set) var count = 0

    /// `directory`: where runs are written when the input does not fit in one (about the input's size
    /// in all). `runBytes`: the most line bytes held in memory.
    public init(directory: String, runBytes: Int = 64 << 20, key: @escaping Key) {
        self.directory = directory
        self.runBytes = max(1, runBytes)
        self.key = key
    }

    deinit { for fd in runs { close(fd) } }

    /// Adds one line (without its newline), number `number` in the input.
    public func add(_ line: UnsafeBufferPointer<UInt8>, number: Int) throws {
        precondition(!finished, "SortedLines.add after finish")
        if !buffer.isEmpty, buffer.count + line.count > runBytes { try spill() }
        if buffer.capacity == 0 { buffer.reserveCapacity(min(runBytes, 1 << 26)) }
        records.append(Record(key: key(line) ?? Int64.min, number: Int64(number), start: buffer.count, count: line.count))
        buffer.append(contentsOf: line)
        count += 1
    }

    /// Ends the input: sorts the last run. Lines are read with `next` afterwards.
    public func finish() throws {
        guard !finished else { return }
        finished = true
        if runs.isEmpty {
            sortRun()
            inMemory = (buffer, records, 0)
        } else {
            if !records.isEmpty { try spill() }
            // Read buffers of 64 MiB in all (1 MiB a run at most, 64 KiB at least).
            let chunk = min(1 << 20, max(64 << 10, (64 << 20) / runs.count))
            spilled = runs.map { RunReader(fd: $0, chunk: chunk) }
            for i in spilled.indices { try spilled[i].advance() }
            heap = spilled.indices.filter { spilled[$0].current != nil }
            for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        }
        buffer = []
        records = []
    }

    /// The next (up to) `maxLines` lines in order, joined by newlines, with their numbers; nil at the end.
    public func next(maxLines: Int) throws -> (bytes: [UInt8], numbers: [Int])? {
        precondition(finished, "SortedLines.next before finish")
        var bytes: [UInt8] = []
        var numbers: [Int] = []
        numbers.reserveCapacity(maxLines)
        if let m = inMemory {
            var k = m.next
            m.buffer.withUnsafeBufferPointer { b in
                while numbers.count < maxLines, k < m.records.count {
                    let r = m.records[k]
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: b[r.start..<(r.start + r.count)]))
                    bytes.append(0x0A)
                    numbers.append(Int(r.number))
                    k += 1
                }
            }
            inMemory!.next = k
        } else {
            while numbers.count < maxLines, let top = heap.first {
                let run = spilled[top]
                let c = run.current!
                bytes.append(contentsOf: run.bytes(c))
                bytes.append(0x0A)
                numbers.append(Int(c.number))
                try spilled[top].advance()
                if spilled[top].current == nil {
                    heap[0] = heap[heap.count - 1]
                    heap.removeLast()
                }
                if !heap.isEmpty { siftDown(0) }
            }
        }
        return numbers.isEmpty ? nil : (bytes, numbers)
    }

    /// The order of lines: by key, then by line number.
    static func precedes(_ a: (key: Int64, number: Int64), _ b: (key: Int64, number: Int64)) -> Bool {
        a.key != b.key ? a.key < b.key : a.number < b.number
    }

    private func sortRun() {
        records.sort { Self.precedes(($0.key, $0.number), ($1.key, $1.number)) }
    }

    /// Sorts the run in memory and writes it to a new unlinked file: per line its key, number and length
    /// (8 + 8 + 4 bytes, little-endian), then its bytes.
    private func spill() throws {
        sortRun()
        let fd = try Self.temporaryFile(in: directory)
        var out: [UInt8] = []
        out.reserveCapacity(1 << 20)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        do {
            try buffer.withUnsafeBufferPointer { b in
                for r in records {
                    put(r.key)
                    put(r.number)
                    put(UInt32(r.count))
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: b[r.start..<(r.start + r.count)]))
                    if out.count >= 1 << 20 {
                        try Self.writeAll(fd, out)
                        out.removeAll(keepingCapacity: true)
                    }
                }
            }
            try Self.writeAll(fd, out)
            guard lseek(fd, 0, SEEK_SET) == 0 else { throw SortedLinesError("cannot rewind a sort run: \(String(cString: strerror(errno)))") }
        } catch {
            close(fd)
            throw error
        }
        runs.append(fd)
        buffer.removeAll(keepingCapacity: true)
        records.removeAll(keepingCapacity: true)
    }

    static func temporaryFile(in directory: String) throws -> Int32 {
        var template = Array((directory.hasSuffix("/") ? directory : directory + "/").utf8CString.dropLast()) + Array("waybill-sort-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw SortedLinesError("cannot make a sort run in \(directory): \(String(cString: strerror(errno)))")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return fd
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SortedLinesError("cannot write a sort run: \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        let x = spilled[heap[a]].current!, y = spilled[heap[b]].current!
        return Self.precedes((x.key, x.number), (y.key, y.number))
    }

    private func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, less(l, m) { m = l }
            if r < heap.count, less(r, m) { m = r }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }

    /// Reads one spilled run record by record through a buffer of `chunk` bytes (more for a longer line).
    struct RunReader {
        let fd: Int32
        let chunk: Int
        /// Bytes read from the run; those in `position..<end` are not consumed yet.
        var buffer: [UInt8] = []
        var end = 0
        var position = 0
        var atEnd = false
        /// The record at `position`: its key, number and the range of its bytes in `buffer`.
        var current: (key: Int64, number: Int64, bytes: Range<Int>)?

        init(fd: Int32, chunk: Int) {
            self.fd = fd
            self.chunk = chunk
        }

        func bytes(_ c: (key: Int64, number: Int64, bytes: Range<Int>)) -> ArraySlice<UInt8> { buffer[c.bytes] }

        /// Moves to the next record (nil at the end of the run).
        mutating func advance() throws {
            if let c = current { position = c.bytes.upperBound }
            current = nil
            guard try fill(20) else {
                if end > position { throw SortedLinesError("a sort run ends inside a record") }
                return
            }
            let count = Int(read(UInt32.self, at: position + 16))
            guard try fill(20 + count) else { throw SortedLinesError("a sort run ends inside a line") }
            let start = position + 20
            current = (read(Int64.self, at: position), read(Int64.self, at: position + 8), start..<(start + count))
        }

        private func read<T: FixedWidthInteger>(_: T.Type, at i: Int) -> T {
            var v: T = 0
            withUnsafeMutableBytes(of: &v) { d in buffer.withUnsafeBytes { s in d.copyMemory(from: UnsafeRawBufferPointer(rebasing: s[i..<(i + MemoryLayout<T>.size)])) } }
            return T(littleEndian: v)
        }

        /// Whether `n` bytes from `position` are in the buffer, moving the unread bytes to its start and
        /// reading more as needed. The buffer is allocated once (and again only for a longer line).
        private mutating func fill(_ n: Int) throws -> Bool {
            if end - position >= n { return true }
            let unread = end - position
            if buffer.count < max(n, chunk) {
                var grown = [UInt8](repeating: 0, count: max(n, chunk))
                grown.withUnsafeMutableBytes { d in buffer.withUnsafeBytes { s in
                    if unread > 0 { d.baseAddress!.copyMemory(from: s.baseAddress! + position, byteCount: unread) }
                } }
                buffer = grown
            } else if unread > 0 {
                buffer.withUnsafeMutableBytes { b in _ = memmove(b.baseAddress!, b.baseAddress! + position, unread) }
            }
            position = 0
            end = unread
            while end < n, !atEnd {
                let got = buffer.withUnsafeMutableBytes { b in Glibc.read(fd, b.baseAddress! + end, b.count - end) }
                if got < 0 {
                    if errno == EINTR { continue }
                    throw SortedLinesError("cannot read a sort run: \(String(cString: strerror(errno)))")
                }
                if got == 0 { atEnd = true }
                end += got
            }
            return end >= n
        }
    }
}

public struct SortedLinesError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the event pass learns about objects, kept on disk instead of in memory: records appended to
/// hash partitions of the object id, so every record of one object lands in the same partition file.
/// Afterwards each partition is read back alone and grouped in memory; a partition larger than
/// `partitionLimit` is split again with another hash seed first. Memory is therefore bounded by the
/// write buffers plus one partition, whatever the number of events or objects.
final class OCELObjectSpool: @unchecked Sendable {
    enum Record {
        /// The object exists; `priority` decides its type when records disagree (an id that is the subject
        /// of an `order.*` event is an order, whatever a link's prefix suggests).
        case object(id: String, type: String, priority: UInt8)
        /// A timed attribute value; `rank` orders `state` values (the lifecycle rank), 0 otherwise.
        case attribute(id: String, name: String, value: String, time: Int64, rank: UInt8)
        case relation(id: String, target: String, qualifier: String)

        var id: String {
            switch self {
            case .object(let id, _, _), .attribute(let id, _, _, _, _), .relation(let id, _, _): return id
            }
        }
    }

    let directory: String
    let partitions: Int
    let partitionLimit: Int
    private var buffers: [[UInt8]]
    private var fds: [Int32]
    private let bufferBytes = 32 << 10
    private(set) var recordsWritten = 0

    /// - Parameter parent: where the temporary directory goes (default `$TMPDIR`, else /tmp).
    init(parent: String?, partitions: Int = 256, partitionLimit: Int = 4 << 20) throws {
        let base = parent ?? ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((base + "/waybill-ocel-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw OCELExportError.temporary("cannot create a temporary directory in \(base): \(String(cString: strerror(errno)))")
        }
        directory = String(cString: made)
        self.partitions = partitions
        self.partitionLimit = partitionLimit
        buffers = Array(repeating: [], count: partitions)
        fds = []
        for p in 0..<partitions {
            let fd = open(directory + "/p\(p)", O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                let e = String(cString: strerror(errno))
                remove()
                throw OCELExportError.temporary("cannot create a temporary file in \(directory): \(e)")
            }
            fds.append(fd)
        }
    }

    deinit { remove() }

    /// Deletes the temporary files (idempotent).
    func remove() {
        for fd in fds where fd >= 0 { close(fd) }
        fds = fds.map { _ in -1 }
        if let names = try? FileManager.default.contentsOfDirectory(atPath: directory) {
            for n in names { unlink(directory + "/" + n) }
        }
        rmdir(directory)
    }

    static func hash(_ s: String, seed: UInt64) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h ^ (h >> 29)
    }

    func append(_ r: Record) throws {
        let p = Int(Self.hash(r.id, seed: 0) % UInt64(partitions))
        Self.encode(r, into: &buffers[p])
        recordsWritten += 1
        if buffers[p].count >= bufferBytes {
            try Self.writeAll(fds[p], buffers[p], directory)
            buffers[p].removeAll(keepingCapacity: true)
        }
    }

    /// Flushes and closes the partition files, then hands each partition's records, grouped by object
    /// id, to `body` (partitions in turn; within one, ids in byte order).
    func drain(_ body: ([String: [Record]]) throws -> Void) throws {
        try finishWriting()
        for p in 0..<partitions { try drainPartition(p, body) }
    }

    /// Flushes and closes the partition files; then `drainPartition` may read them.
    func finishWriting() throws {
        for p in 0..<partitions {
            if !buffers[p].isEmpty { try Self.writeAll(fds[p], buffers[p], directory) }
            buffers[p] = []
            close(fds[p])
            fds[p] = -1
        }
    }

    /// One partition's records grouped by object id (after `finishWriting`). Partitions are independent
    /// files: different partitions may be drained on different threads at once.
    func drainPartition(_ p: Int, _ body: ([String: [Record]]) throws -> Void) throws {
        try drainFile(directory + "/p\(p)", seed: 1, body)
    }

    private func drainFile(_ path: String, seed: UInt64, _ body: ([String: [Record]]) throws -> Void) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { return }
        if Int(st.st_size) > partitionLimit && seed < 6 {
            // Split this partition in 16 with another seed; each part is a sixteenth on average.
            let parts = 16
            var outs: [Int32] = []
            var bufs = Array(repeating: [UInt8](), count: parts)
            for i in 0..<parts {
                let fd = open(path + ".\(i)", O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw OCELExportError.temporary("cannot create \(path).\(i): \(String(cString: strerror(errno)))") }
                outs.append(fd)
            }
            try Self.readRecords(path) { r in
                let i = Int(Self.hash(r.id, seed: seed) % UInt64(parts))
                Self.encode(r, into: &bufs[i])
                if bufs[i].count >= bufferBytes {
                    try Self.writeAll(outs[i], bufs[i], directory)
                    bufs[i].removeAll(keepingCapacity: true)
                }
            }
            for i in 0..<parts {
                try Self.writeAll(outs[i], bufs[i], directory)
                close(outs[i])
            }
            unlink(path)
            for i in 0..<parts { try drainFile(path + ".\(i)", seed: seed + 1, body) }
            return
        }
        var groups: [String: [Record]] = [:]
        try Self.readRecords(path) { r in groups[r.id, default: []].append(r) }
        unlink(path)
        if !groups.isEmpty { try body(groups) }
    }

    // MARK: Record format: kind byte, then length-prefixed strings and fixed-width integers.

    static func encode(_ r: Record, into b: inout [UInt8]) {
        func str(_ s: String) {
            let u = s.utf8
            var n = UInt32(u.count)
            withUnsafeBytes(of: &n) { b.append(contentsOf: $0) }
            b.append(contentsOf: u)
        }
        switch r {
        case .object(let id, let type, let priority):
            b.append(1); str(id); str(type); b.append(priority)
        case .attribute(let id, let name, let value, let time, let rank):
            b.append(2); str(id); str(name); str(value)
            var t = time
            withUnsafeBytes(of: &t) { b.append(contentsOf: $0) }
            b.append(rank)
        case .relation(let id, let target, let qualifier):
            b.append(3); str(id); str(target); str(qualifier)
        }
    }

    /// Reads a partition file in chunks (never whole), handing each record to `body`.
    static func readRecords(_ path: String, _ body: (Record) throws -> Void) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw OCELExportError.temporary("cannot read the temporary file \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buf = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let r = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if r < 0 {
                if errno == EINTR { continue }
                throw OCELExportError.temporary("cannot read the temporary file \(path): \(String(cString: strerror(errno)))")
            }
            if r == 0 { break }
            buf.append(contentsOf: chunk[0..<r])
            var consumed = 0
            try buf.withUnsafeBytes { raw in
                while let (record, next) = decode(raw, at: consumed) {
                    try body(record)
                    consumed = next
                }
            }
            buf.removeFirst(consumed)
        }
        guard buf.isEmpty else { throw OCELExportError.temporary("temporary file \(path) is truncated") }
    }

    /// The record at `start` and the offset after it, or nil when the bytes end before it does.
    static func decode(_ raw: UnsafeRawBufferPointer, at start: Int) -> (Record, Int)? {
        var i = start
        let n = raw.count
        func str() -> String? {
            guard i + 4 <= n else { return nil }
            let len = Int(raw.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            guard i + 4 + len <= n else { return nil }
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: raw[(i + 4)..<(i + 4 + len)]), as: UTF8.self)
            i += 4 + len
            return s
        }
        func byte() -> UInt8? {
            guard i < n else { return nil }
            defer { i += 1 }
            return raw[i]
        }
        switch byte() {
        case 1:
            guard let id = str(), let type = str(), let priority = byte() else { return nil }
            return (.object(id: id, type: type, priority: priority), i)
        case 2:
            guard let id = str(), let name = str(), let value = str(), i + 8 <= n else { return nil }
            let t = raw.loadUnaligned(fromByteOffset: i, as: Int64.self)
            i += 8
            guard let rank = byte() else { return nil }
            return (.attribute(id: id, name: name, value: value, time: t, rank: rank), i)
        case 3:
            guard let id = str(), let target = str(), let qualifier = str() else { return nil }
            return (.relation(id: id, target: target, qualifier: qualifier), i)
        default:
            return nil
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], _ directory: String) throws {
        var off = 0
        try bytes.withUnsafeBytes { p in
            while off < p.count {
                let w = write(fd, p.baseAddress! + off, p.count - off)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw OCELExportError.temporary("cannot write a temporary file in \(directory): \(String(cString: strerror(errno)))")
                }
                off += w
            }
        }
    }
}

import CZlib
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A streaming gzip compressor (zlib's deflate with the gzip wrapper): chunks in, compressed chunks out,
/// nothing kept but zlib's window.
public final class OCELGzipStream {
    private var stream = z_stream()
    private var out = [UInt8](repeating: 0, count: 256 << 10)
    private let sink: ([UInt8]) throws -> Void
    private var ended = false

    public init(level: Int32 = 6, sink: @escaping ([UInt8]) throws -> Void) throws {
        self.sink = sink
        guard deflateInit2_(&stream, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                            Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw OCELExportError.temporary("zlib: deflateInit2 failed")
        }
    }

    deinit { if !ended { deflateEnd(&stream) } }

    public func write(_ bytes: [UInt8]) throws { try run(bytes, flush: Z_NO_FLUSH) }

    /// Ends the gzip member (trailer with CRC and length).
    public func finish() throws {
        try run([], flush: Z_FINISH)
        deflateEnd(&stream)
        ended = true
    }

    private func run(_ input: [UInt8], flush: Int32) throws {
        var input = input
        try input.withUnsafeMutableBufferPointer { inp in
            stream.next_in = inp.baseAddress
            stream.avail_in = UInt32(inp.count)
            repeat {
                let (rc, produced) = out.withUnsafeMutableBufferPointer { o -> (Int32, Int) in
                    stream.next_out = o.baseAddress
                    stream.avail_out = UInt32(o.count)
                    let rc = CZlib.deflate(&stream, flush)
                    return (rc, o.count - Int(stream.avail_out))
                }
                guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else { throw OCELExportError.temporary("zlib: deflate failed (\(rc))") }
                if produced > 0 { try sink(Array(out[0..<produced])) }
                if flush == Z_FINISH ? rc == Z_STREAM_END : (stream.avail_in == 0 && produced < out.count) { break }
            } while true
        }
    }
}

/// The export's file: written to `PATH.partial` and renamed when complete, so a failed export never
/// leaves a file that looks whole; gzip-compressed when the name ends in `.gz`.
public final class OCELFileOutput {
    public let path: String
    private let temporary: String
    private let fd: Int32
    private var gzip: OCELGzipStream?
    private var done = false

    /// - Parameter compress: gzip the bytes written (default: when `path` ends in `.gz`); false when they
    ///   arrive compressed already.
    public init(path: String, compress: Bool? = nil) throws {
        self.path = path
        temporary = path + ".partial"
        fd = open(temporary, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OCELExportError.temporary("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        if compress ?? path.hasSuffix(".gz") {
            let fd = self.fd, name = temporary
            gzip = try OCELGzipStream { try Self.writeAll(fd, $0, name) }
        }
    }

    deinit {
        if !done {
            close(fd)
            unlink(temporary)
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        if let gzip { try gzip.write(bytes) } else { try Self.writeAll(fd, bytes, temporary) }
    }

    /// Completes the file and moves it to `path`.
    public func finish() throws {
        try gzip?.finish()
        guard fsync(fd) == 0 || errno == EINVAL else { throw OCELExportError.temporary("cannot sync \(temporary): \(String(cString: strerror(errno)))") }
        close(fd)
        done = true
        guard rename(temporary, path) == 0 else { throw OCELExportError.temporary("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))") }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], _ name: String) throws {
        var off = 0
        try bytes.withUnsafeBytes { p in
            while off < p.count {
                let w = Glibc.write(fd, p.baseAddress! + off, p.count - off)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw OCELExportError.temporary("cannot write \(name): \(String(cString: strerror(errno)))")
                }
                off += w
            }
        }
    }
}

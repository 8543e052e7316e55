import CZlib

public enum InflateError: Error, Sendable, Equatable {
    /// The inflated body would exceed the limit (a gzip bomb or simply too much).
    case tooLarge(limit: Int)
    case corrupt(String)
}

public enum Gzip {
    /// Inflates gzip (or zlib) data, refusing to produce more than `limit` bytes.
    public static func inflate(_ input: [UInt8], limit: Int) throws(InflateError) -> [UInt8] {
        var stream = z_stream()
        // 32 + MAX_WBITS: detect gzip or zlib headers automatically.
        guard inflateInit2_(&stream, 32 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .corrupt("cannot initialise zlib")
        }
        defer { inflateEnd(&stream) }
        var out: [UInt8] = []
        out.reserveCapacity(min(limit, max(input.count * 4, 4096)))
        let chunk = 64 * 1024
        var buffer = [UInt8](repeating: 0, count: chunk)
        var status: Int32 = Z_OK
        var failure: InflateError?
        input.withUnsafeBufferPointer { inPtr in
            stream.next_in = UnsafeMutablePointer(mutating: inPtr.baseAddress)
            stream.avail_in = UInt32(inPtr.count)
            repeat {
                buffer.withUnsafeMutableBufferPointer { outPtr in
                    stream.next_out = outPtr.baseAddress
                    stream.avail_out = UInt32(chunk)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunk - Int(stream.avail_out)
                if out.count + produced > limit {
                    failure = .tooLarge(limit: limit)
                    return
                }
                out.append(contentsOf: buffer[0..<produced])
                if status == Z_STREAM_END {
                    // Concatenated gzip members are allowed (RFC 1952).
                    if stream.avail_in > 0 {
                        inflateReset(&stream)
                        status = Z_OK
                        continue
                    }
                    return
                }
                if status != Z_OK && status != Z_BUF_ERROR {
                    failure = .corrupt(stream.msg.map { String(cString: $0) } ?? "inflate error \(status)")
                    return
                }
                if status == Z_BUF_ERROR && stream.avail_in == 0 {
                    failure = .corrupt("truncated gzip data")
                    return
                }
            } while true
        }
        if let failure { throw failure }
        return out
    }

    /// Compresses with gzip framing (used by tests and the CLI's remote mode).
    public static func deflate(_ input: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        deflateInit2_(&stream, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))) + 32)
        var mutableInput = input
        let produced: Int = mutableInput.withUnsafeMutableBufferPointer { inPtr in
            out.withUnsafeMutableBufferPointer { outPtr in
                stream.next_in = inPtr.baseAddress
                stream.avail_in = UInt32(inPtr.count)
                stream.next_out = outPtr.baseAddress
                stream.avail_out = UInt32(outPtr.count)
                CZlib.deflate(&stream, Z_FINISH)
                return outPtr.count - Int(stream.avail_out)
            }
        }
        return Array(out[0..<produced])
    }

    public static func isGzip(_ b: [UInt8]) -> Bool { b.count >= 2 && b[0] == 0x1f && b[1] == 0x8b }
}

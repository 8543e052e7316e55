/// ClickHouse's `cityHash64` (CityHash64 of Google's CityHash 1.0.2, the version ClickHouse keeps for
/// compatibility), over the UTF-8 bytes of a string. Waybill's Distributed tables shard by it, so the
/// engine can compute which shard holds a key and read that shard's own tables (`ShardMap`). The store
/// checks it against the server's at open and reads through the Distributed tables when they differ.
enum CityHash {
    static let k0: UInt64 = 0xc3a5_c85c_97cb_3127
    static let k1: UInt64 = 0xb492_b66f_be98_f273
    static let k2: UInt64 = 0x9ae1_6a3b_2f90_404f
    static let k3: UInt64 = 0xc949_d7c7_509e_6557

    static func hash64(_ s: String) -> UInt64 {
        var s = s
        return s.withUTF8 { hash64(UnsafeRawBufferPointer($0)) }
    }

    static func hash64(_ p: UnsafeRawBufferPointer) -> UInt64 {
        let len = p.count
        if len <= 32 {
            return len <= 16 ? len0to16(p, 0, len) : len17to32(p, len)
        } else if len <= 64 {
            return len33to64(p, len)
        }
        var x = fetch64(p, 0)
        var y = fetch64(p, len - 16) ^ k1
        var z = fetch64(p, len - 56) ^ k0
        var v = weak32(p, len - 64, UInt64(len), y)
        var w = weak32(p, len - 32, UInt64(len) &* k1, k0)
        z = z &+ shiftMix(v.1) &* k1
        x = rotate(z &+ x, 39) &* k1
        y = rotate(y, 33) &* k1
        var left = (len - 1) & ~63
        var at = 0
        repeat {
            x = rotate(x &+ y &+ v.0 &+ fetch64(p, at + 16), 37) &* k1
            y = rotate(y &+ v.1 &+ fetch64(p, at + 48), 42) &* k1
            x ^= w.1
            y ^= v.0
            z = rotate(z ^ w.0, 33)
            v = weak32(p, at, v.1 &* k1, x &+ w.0)
            w = weak32(p, at + 32, z &+ w.1, y)
            swap(&z, &x)
            at += 64
            left -= 64
        } while left != 0
        return len16(len16(v.0, w.0) &+ shiftMix(y) &* k1 &+ z, len16(v.1, w.1) &+ x)
    }

    @inline(__always) static func fetch64(_ p: UnsafeRawBufferPointer, _ i: Int) -> UInt64 {
        UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self))
    }

    @inline(__always) static func fetch32(_ p: UnsafeRawBufferPointer, _ i: Int) -> UInt64 {
        UInt64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self)))
    }

    @inline(__always) static func rotate(_ v: UInt64, _ shift: Int) -> UInt64 {
        shift == 0 ? v : (v >> UInt64(shift)) | (v << UInt64(64 - shift))
    }

    @inline(__always) static func shiftMix(_ v: UInt64) -> UInt64 { v ^ (v >> 47) }

    static func len16(_ u: UInt64, _ v: UInt64) -> UInt64 {
        let mul: UInt64 = 0x9ddf_ea08_eb38_2d69
        var a = (u ^ v) &* mul
        a ^= a >> 47
        var b = (v ^ a) &* mul
        b ^= b >> 47
        return b &* mul
    }

    static func len0to16(_ p: UnsafeRawBufferPointer, _ at: Int, _ len: Int) -> UInt64 {
        if len > 8 {
            let a = fetch64(p, 0)
            let b = fetch64(p, len - 8)
            // RotateByAtLeast1: len is 9...16 here.
            let r = b &+ UInt64(len)
            return len16(a, (r >> UInt64(len)) | (r << UInt64(64 - len))) ^ b
        }
        if len >= 4 {
            let a = fetch32(p, 0)
            return len16(UInt64(len) &+ (a << 3), fetch32(p, len - 4))
        }
        if len > 0 {
            let a = UInt32(p[0]), b = UInt32(p[len >> 1]), c = UInt32(p[len - 1])
            let y = a &+ (b << 8)
            let z = UInt32(len) &+ (c << 2)
            return shiftMix(UInt64(y) &* k2 ^ UInt64(z) &* k3) &* k2
        }
        return k2
    }

    static func len17to32(_ p: UnsafeRawBufferPointer, _ len: Int) -> UInt64 {
        let a = fetch64(p, 0) &* k1
        let b = fetch64(p, 8)
        let c = fetch64(p, len - 8) &* k2
        let d = fetch64(p, len - 16) &* k0
        return len16(rotate(a &- b, 43) &+ rotate(c, 30) &+ d, a &+ rotate(b ^ k3, 20) &- c &+ UInt64(len))
    }

    static func weak32(_ w: UInt64, _ x: UInt64, _ y: UInt64, _ z: UInt64, _ a0: UInt64, _ b0: UInt64) -> (UInt64, UInt64) {
        var a = a0 &+ w
        var b = rotate(b0 &+ a &+ z, 21)
        let c = a
        a = a &+ x
        a = a &+ y
        b = b &+ rotate(a, 44)
        return (a &+ z, b &+ c)
    }

    static func weak32(_ p: UnsafeRawBufferPointer, _ at: Int, _ a: UInt64, _ b: UInt64) -> (UInt64, UInt64) {
        weak32(fetch64(p, at), fetch64(p, at + 8), fetch64(p, at + 16), fetch64(p, at + 24), a, b)
    }

    static func len33to64(_ p: UnsafeRawBufferPointer, _ len: Int) -> UInt64 {
        var z = fetch64(p, 24)
        var a = fetch64(p, 0) &+ (UInt64(len) &+ fetch64(p, len - 16)) &* k0
        var b = rotate(a &+ z, 52)
        var c = rotate(a, 37)
        a = a &+ fetch64(p, 8)
        c = c &+ rotate(a, 7)
        a = a &+ fetch64(p, 16)
        let vf = a &+ z
        let vs = b &+ rotate(a, 31) &+ c
        a = fetch64(p, 16) &+ fetch64(p, len - 32)
        z = fetch64(p, len - 8)
        b = rotate(a &+ z, 52)
        c = rotate(a, 37)
        a = a &+ fetch64(p, len - 24)
        c = c &+ rotate(a, 7)
        a = a &+ fetch64(p, len - 16)
        let wf = a &+ z
        let ws = b &+ rotate(a, 31) &+ c
        let r = shiftMix((vf &+ ws) &* k2 &+ (wf &+ vs) &* k0)
        return shiftMix(r &* k0 &+ vs) &* k2
    }
}

import Testing
import WaybillModel
@testable import WaybillKPI
@testable import WaybillStore
import WaybillTestSupport

/// The replay's memo (`CoveringRollupReader`): any run of reads through it answers what the store answers,
/// and a replay's look-back (windows one step apart) reads the store a few times instead of once per window.
struct CoveringRollupReaderTests {
    typealias M = MaxExactnessTests
    static let hour = WaybillTestSupport.hour, minute = WaybillTestSupport.minute, second = WaybillTestSupport.second

    static func store(seed: UInt64) throws -> M.MemoryStore {
        var rng = SplitMix64(seed: seed)
        var store = M.MemoryStore()
        try M.ingest(M.stream(M.lateExtremes(seed: seed), .shuffledWithDuplicates, &rng), into: &store, maxBatch: 50, &rng)
        return store
    }

    /// Property: random runs of reads (KPI documents of any window and dimension, raw row and fact reads of
    /// random ranges), walking back and jumping, through one memo with any reach: each answer equals the
    /// store's.
    @Test(arguments: [UInt64(1), 2, 3])
    func everyAnswerIsTheStores(_ seed: UInt64) throws {
        let store = try Self.store(seed: seed)
        var rng = SplitMix64(seed: seed &* 31)
        for reach in [0, 15 * Self.minute, 3 * Self.hour] {
            let memo = CoveringRollupReader(store, reach: reach)
            let direct = KPIService(reader: store), cached = KPIService(reader: memo)
            var t = M.start + 7 * Self.hour + Micros(rng.next() % UInt64(Self.hour))
            for i in 0..<60 {
                // Mostly a step back, sometimes a jump anywhere (before or after what was read).
                t = rng.next() % 6 == 0 ? M.start - Self.hour + Micros(rng.next() % UInt64(9 * Self.hour)) : t - 15 * Self.second
                let window = [Self.hour, 4 * Self.hour, 24 * Self.hour, 90 * Self.minute + 7 * Self.second][Int(rng.next() % 4)]
                let by: KPIDimension? = [nil, .warehouse, .channel, .region][Int(rng.next() % 4)]
                let q = try KPIQuery(from: t - window, to: t, by: by)
                #expect(try cached.document(q) == direct.document(q), "reach \(reach) read \(i) \(q)")
                let a = t - Micros(rng.next() % UInt64(6 * Self.hour)), b = a + Micros(rng.next() % UInt64(2 * Self.hour))
                let ranges = [a..<b, (b + Self.minute)..<(b + 2 * Self.minute + Micros(rng.next() % UInt64(Self.hour)))]
                #expect(Set(try memo.kpiFacts(in: ranges).map(\.orderID)) == Set(try store.kpiFacts(in: ranges).map(\.orderID)),
                        "reach \(reach) facts \(ranges)")
                let dimension = KPIRollupKey.storedDimension(by?.rawValue ?? "total", width: Self.minute)
                let got = try memo.rollupRows(dimension: dimension, in: ranges).sorted { $0.key < $1.key }
                let want = try store.rollupRows(dimension: dimension, in: ranges)
                #expect(got.map(\.key) == want.map(\.key) && got.map(\.bytes) == want.map(\.bytes), "reach \(reach) rows \(dimension) \(ranges)")
            }
        }
    }

    /// A replay's look-back of 62 windows of 6 h, 15 s apart, through a memo that reaches over it: the store
    /// is read a few times (a first read per dimension and per edge), not for every window.
    @Test func aLookBackReadsTheStoreAFewTimes() throws {
        let store = try Self.store(seed: 4)
        let memo = CoveringRollupReader(store, reach: 62 * 15 * Self.second)
        let direct = KPIService(reader: store), cached = KPIService(reader: memo)
        let t = M.start + 6 * Self.hour + 7 * Self.minute + 3 * Self.second
        for k in 0..<62 {
            let q = try KPIQuery(from: t - Micros(k) * 15 * Self.second - 6 * Self.hour, to: t - Micros(k) * 15 * Self.second, by: .warehouse)
            #expect(try cached.document(q) == direct.document(q))
        }
        #expect(memo.storeReads <= 12, "\(memo.storeReads) reads of the store for 62 windows")
    }

    @Test func rangeCoverSubtractsAndWidens() {
        var c = RangeCover()
        c.add([10..<20, 30..<40, 20..<25])
        #expect(c.ranges == [10..<25, 30..<40])
        #expect(c.subtract(0..<50) == [0..<10, 25..<30, 40..<50])
        #expect(c.subtract(12..<24).isEmpty)
        #expect(c.missing([12..<24, 35..<38], reach: 100).isEmpty)
        // Widened towards the past, then cut to what is not covered.
        #expect(c.missing([41..<45], reach: 8) == [40..<45])
        #expect(c.missing([26..<28, 44..<45], reach: 3) == [25..<28, 41..<45])
        #expect(c.missing([-10..<6], reach: Micros.max) == [Micros.min..<6], "no overflow")
    }
}

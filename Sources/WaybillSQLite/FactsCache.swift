import WaybillModel

/// The writer's cache of recently merged order facts, bounded by two generations: entries go into the
/// young one; when it is full it becomes the old one and the previous old generation is dropped, and a
/// hit in the old generation moves the entry back to the young one. So an order touched again within
/// the last `limit / 2` distinct orders is always found, memory never exceeds `limit` entries (nor
/// about `byteLimit` bytes of facts), and a full cache never forgets everything at once (an interleaved
/// stream keeps thousands of orders hot).
struct FactsCache {
    /// The row and its facts, decoded: a hit costs no decoding, and a write no second encoding (the
    /// row's column takes `FactsCodec.encodeRow`). Taken out with `take` while the writer merges into
    /// them, so the merge does not copy their collections because the cache still holds them.
    typealias Entry = (rid: Int64, facts: OrderFacts)
    private struct Slot {
        var entry: Entry
        var cost: Int
    }
    private var young: [String: Slot] = [:]
    private var old: [String: Slot] = [:]
    /// The estimated bytes of the young generation's facts (`cost`).
    private var youngBytes = 0
    let generation: Int
    let generationBytes: Int

    /// - Parameters:
    ///   - limit: most entries held.
    ///   - byteLimit: most bytes of facts held, as `cost` estimates them: decoded facts of orders with
    ///     hundreds of lines take tens of kilobytes each, so a count alone would not bound the memory.
    init(limit: Int, byteLimit: Int = 64 << 20) {
        generation = max(1, limit / 2)
        generationBytes = max(1, byteLimit / 2)
    }

    var count: Int { young.count + old.count }

    /// The memory an order's decoded facts take, estimated from what grows with the order: its lines
    /// (ordered and allocated), its event types and sources, its stages.
    static func cost(_ f: OrderFacts) -> Int {
        let lines = (f.accepted?.lines.count ?? 0) + (f.firstAllocation?.lines.count ?? 0)
        return 512 + 112 * lines + 56 * (f.types.count + f.sources.count) + 32 * f.stageTimes.count
    }

    mutating func get(_ key: String) -> Entry? {
        if let s = young[key] { return s.entry }
        guard let s = old.removeValue(forKey: key) else { return nil }
        put(key, s.entry)
        return s.entry
    }

    /// Removes and returns the entry of `key`; the caller puts it back (`put`) once it is written.
    mutating func take(_ key: String) -> Entry? {
        if let s = young.removeValue(forKey: key) {
            youngBytes -= s.cost
            return s.entry
        }
        return old.removeValue(forKey: key)?.entry
    }

    mutating func put(_ key: String, _ e: Entry) {
        // A newer value supersedes one in the old generation.
        if !old.isEmpty { old.removeValue(forKey: key) }
        let slot = Slot(entry: e, cost: Self.cost(e.facts))
        youngBytes += slot.cost
        if let replaced = young.updateValue(slot, forKey: key) { youngBytes -= replaced.cost }
        if young.count >= generation || youngBytes >= generationBytes {
            old = young
            young = [:]
            young.reserveCapacity(generation)
            youngBytes = 0
        }
    }

    mutating func removeAll() {
        young.removeAll()
        old.removeAll()
        youngBytes = 0
    }
}

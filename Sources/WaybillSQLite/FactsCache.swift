import WaybillModel

/// The writer's cache of recently merged order facts, bounded by two generations: entries go into the
/// young one; when it is full it becomes the old one and the previous old generation is dropped, and a
/// hit in the old generation moves the entry back to the young one. So an order touched again within
/// the last `limit / 2` distinct orders is always found, memory never exceeds `limit` entries, and a
/// full cache never forgets everything at once (an interleaved stream keeps thousands of orders hot).
struct FactsCache {
    /// The row and its facts, decoded: a hit costs no decoding, and a write no second encoding (the
    /// row's column takes `FactsCodec.encodeRow`). Taken out with `take` while the writer merges into
    /// them, so the merge does not copy their collections because the cache still holds them.
    typealias Entry = (rid: Int64, facts: OrderFacts)
    private var young: [String: Entry] = [:]
    private var old: [String: Entry] = [:]
    let generation: Int

    init(limit: Int) { generation = max(1, limit / 2) }

    var count: Int { young.count + old.count }

    mutating func get(_ key: String) -> Entry? {
        if let e = young[key] { return e }
        guard let e = old.removeValue(forKey: key) else { return nil }
        put(key, e)
        return e
    }

    /// Removes and returns the entry of `key`; the caller puts it back (`put`) once it is written.
    mutating func take(_ key: String) -> Entry? {
        young.removeValue(forKey: key) ?? old.removeValue(forKey: key)
    }

    mutating func put(_ key: String, _ e: Entry) {
        // A newer value supersedes one in the old generation.
        if !old.isEmpty { old.removeValue(forKey: key) }
        if young.updateValue(e, forKey: key) == nil, young.count >= generation {
            old = young
            young = [:]
            young.reserveCapacity(generation)
        }
    }

    mutating func removeAll() {
        young.removeAll()
        old.removeAll()
    }
}

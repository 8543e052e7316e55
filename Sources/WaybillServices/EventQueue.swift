import WaybillModel

/// A priority queue of things due at virtual times; ties keep insertion order, so runs are reproducible.
///
/// A calendar queue: keys are filed in one-minute buckets and only the current bucket is a binary
/// heap, so the heap stays small and cache-resident however many things are pending. Payloads stay
/// in slots until popped; only 24-byte keys move.
struct EventQueue<Payload> {
    struct Key {
        var time: Micros
        var seq: UInt64
        var slot: Int
        @inline(__always) func before(_ o: Key) -> Bool { time < o.time || (time == o.time && seq < o.seq) }
    }

    static var bucketWidth: Micros { 60_000_000 }

    /// Keys of the current bucket (and anything filed at or before it), as a binary heap.
    private var heap: [Key] = []
    private var currentBucket = Int64.min
    /// Keys of later buckets, unordered, by bucket number.
    private var later: [Int64: [Key]] = [:]
    /// Bucket numbers present in `later`, as a binary min-heap.
    private var laterBuckets: [Int64] = []
    private var slots: [Payload?] = []
    private var freeSlots: [Int] = []
    private var nextSeq: UInt64 = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    @inline(__always) private static func bucket(_ t: Micros) -> Int64 {
        t >= 0 ? t / bucketWidth : (t - bucketWidth + 1) / bucketWidth
    }

    mutating func push(_ time: Micros, _ payload: Payload) {
        let slot: Int
        if let s = freeSlots.popLast() {
            slot = s
            slots[s] = payload
        } else {
            slot = slots.count
            slots.append(payload)
        }
        let key = Key(time: time, seq: nextSeq, slot: slot)
        nextSeq &+= 1
        count += 1
        let b = EventQueue.bucket(time)
        if b <= currentBucket {
            heapPush(key)
        } else {
            if later[b] == nil {
                later[b] = [key]
                bucketPush(b)
            } else {
                later[b]!.append(key)
            }
        }
    }

    /// The time of the next thing due (loading the next bucket when the current one is done).
    mutating func nextTime() -> Micros? {
        if heap.isEmpty { loadNextBucket() }
        return heap.first?.time
    }

    /// The time of the next thing due, without changing the queue.
    var peekTime: Micros? {
        if let t = heap.first?.time { return t }
        guard let b = laterBuckets.first else { return nil }
        return later[b]?.min { $0.before($1) }?.time
    }

    /// Everything pending, in the order it would be popped. Pushing these in this order into an empty
    /// queue gives a queue that pops the same things in the same order, before anything pushed later.
    var pending: [(time: Micros, payload: Payload)] {
        var keys = heap
        for k in later.values { keys += k }
        keys.sort { $0.before($1) }
        return keys.map { ($0.time, slots[$0.slot]!) }
    }

    mutating func pop() -> (time: Micros, payload: Payload)? {
        if heap.isEmpty { loadNextBucket() }
        guard let top = heapPop() else { return nil }
        count -= 1
        var payload: Payload? = nil
        swap(&payload, &slots[top.slot])
        freeSlots.append(top.slot)
        return (top.time, payload!)
    }

    private mutating func loadNextBucket() {
        guard let b = bucketPop() else { return }
        currentBucket = b
        heap = later.removeValue(forKey: b) ?? []
        // Heapify.
        heap.withUnsafeMutableBufferPointer { e in
            var i = e.count / 2 - 1
            while i >= 0 {
                EventQueue.siftDown(e, from: i, item: e[i])
                i -= 1
            }
        }
    }

    // MARK: Binary heap of keys

    private mutating func heapPush(_ key: Key) {
        heap.append(key)
        heap.withUnsafeMutableBufferPointer { e in
            var i = e.count - 1
            while i > 0 {
                let p = (i - 1) >> 1
                if !key.before(e[p]) { break }
                e[i] = e[p]
                i = p
            }
            e[i] = key
        }
    }

    private mutating func heapPop() -> Key? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        let top = heap[0]
        heap.withUnsafeMutableBufferPointer { EventQueue.siftDown($0, from: 0, item: last) }
        return top
    }

    @inline(__always) private static func siftDown(_ e: UnsafeMutableBufferPointer<Key>, from start: Int, item: Key) {
        let n = e.count
        var i = start
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var c = l
            if l + 1 < n && e[l + 1].before(e[l]) { c = l + 1 }
            if !e[c].before(item) { break }
            e[i] = e[c]
            i = c
        }
        e[i] = item
    }

    // MARK: Min-heap of bucket numbers

    private mutating func bucketPush(_ b: Int64) {
        laterBuckets.append(b)
        var i = laterBuckets.count - 1
        while i > 0 {
            let p = (i - 1) >> 1
            if laterBuckets[p] <= b { break }
            laterBuckets[i] = laterBuckets[p]
            i = p
        }
        laterBuckets[i] = b
    }

    private mutating func bucketPop() -> Int64? {
        guard let last = laterBuckets.popLast() else { return nil }
        guard !laterBuckets.isEmpty else { return last }
        let top = laterBuckets[0]
        let n = laterBuckets.count
        var i = 0
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var c = l
            if l + 1 < n && laterBuckets[l + 1] < laterBuckets[l] { c = l + 1 }
            if laterBuckets[c] >= last { break }
            laterBuckets[i] = laterBuckets[c]
            i = c
        }
        laterBuckets[i] = last
        return top
    }
}

/// Encoded as what is pending, in pop order; decoding pushes it back in that order into an empty queue,
/// so the decoded queue pops the same things in the same order, before anything pushed after.
extension EventQueue: Codable where Payload: Codable {
    struct Entry: Codable {
        var time: Micros
        var payload: Payload
    }

    init(from decoder: any Decoder) throws {
        self.init()
        for e in try decoder.singleValueContainer().decode([Entry].self) { push(e.time, e.payload) }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(pending.map { Entry(time: $0.time, payload: $0.payload) })
    }
}

extension EventQueue: Sendable where Payload: Sendable {}

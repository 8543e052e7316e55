import WaybillModel

/// A min-heap of things due at virtual times; ties keep insertion order, so runs are reproducible.
/// The heap moves only small keys; payloads stay in slots until popped.
struct EventQueue<Payload> {
    struct Key {
        var time: Micros
        var seq: UInt64
        var slot: Int
        @inline(__always) func before(_ o: Key) -> Bool { time < o.time || (time == o.time && seq < o.seq) }
    }

    private var heap: [Key] = []
    private var slots: [Payload?] = []
    private var freeSlots: [Int] = []
    private var nextSeq: UInt64 = 0

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    var nextTime: Micros? { heap.first?.time }

    mutating func push(_ time: Micros, _ payload: Payload) {
        let slot: Int
        if let s = freeSlots.popLast() {
            slot = s
            slots[s] = payload
        } else {
            slot = slots.count
            slots.append(payload)
        }
        heap.append(Key(time: time, seq: nextSeq, slot: slot))
        nextSeq &+= 1
        heap.withUnsafeMutableBufferPointer { e in
            var i = e.count - 1
            let item = e[i]
            while i > 0 {
                let p = (i - 1) >> 1
                if !item.before(e[p]) { break }
                e[i] = e[p]
                i = p
            }
            e[i] = item
        }
    }

    mutating func pop() -> (time: Micros, payload: Payload)? {
        guard let last = heap.popLast() else { return nil }
        var top = last
        if !heap.isEmpty {
            top = heap[0]
            heap.withUnsafeMutableBufferPointer { e in
                let n = e.count
                var i = 0
                while true {
                    let l = 2 * i + 1
                    if l >= n { break }
                    var c = l
                    if l + 1 < n && e[l + 1].before(e[l]) { c = l + 1 }
                    if !e[c].before(last) { break }
                    e[i] = e[c]
                    i = c
                }
                e[i] = last
            }
        }
        var payload: Payload? = nil
        swap(&payload, &slots[top.slot])
        freeSlots.append(top.slot)
        return (top.time, payload!)
    }
}

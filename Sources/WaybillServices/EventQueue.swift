import WaybillModel

/// A min-heap of things due at virtual times; ties keep insertion order, so runs are reproducible.
struct EventQueue<Payload> {
    struct Entry {
        var time: Micros
        var seq: UInt64
        var payload: Payload
        @inline(__always) func before(_ o: Entry) -> Bool { time < o.time || (time == o.time && seq < o.seq) }
    }

    private(set) var entries: [Entry] = []
    private var nextSeq: UInt64 = 0

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }
    var nextTime: Micros? { entries.first?.time }

    mutating func push(_ time: Micros, _ payload: Payload) {
        entries.append(Entry(time: time, seq: nextSeq, payload: payload))
        nextSeq &+= 1
        var i = entries.count - 1
        entries.withUnsafeMutableBufferPointer { e in
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

    mutating func pop() -> Entry? {
        guard let last = entries.popLast() else { return nil }
        if entries.isEmpty { return last }
        let top = entries[0]
        entries.withUnsafeMutableBufferPointer { e in
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
        return top
    }
}

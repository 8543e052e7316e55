import Dispatch
import Foundation
import WaybillModel
import WaybillStore

/// The merge of an epoch's facts (or a refold's) into the order rows, in two threads: the writer thread
/// runs every SQLite call, in key order as before; a second thread computes each order's new facts (its
/// epoch facts decoded, merged into the row's, the stored form encoded) one chunk ahead. So the rows,
/// their order and the rollup transitions are the same as in one thread, and a bulk load's flush at
/// close, which has the machine to itself, uses both cores.
extension OrdersTable {
    /// One order of a chunk as the writer read it, then as the other thread computed it.
    struct FlushRow: Sendable {
        let order: String
        let rid: Int64?
        let old: OrderFacts?
        /// Whether the row's columns hold `old` (`FactsCodec.decodeStored`): else all are rewritten.
        var columnsHold = false
        var facts = OrderFacts(orderID: "")
        var encoded: [UInt8] = []
    }

    /// Orders per chunk: big enough that a chunk's hand-over (two thread switches) is noise, small enough
    /// that the first chunk, computed while the writer waits, is short.
    static let flushChunk = 512
    /// `WAYBILL_SERIAL_FLUSH=1`: the writer computes each chunk itself (the single-thread flush, to compare).
    static let serialFlush = ProcessInfo.processInfo.environment["WAYBILL_SERIAL_FLUSH"] != nil

    /// Merges into each order's row (in key order) its facts from `delta`, applying the transitions to the
    /// rollups when `rollups` is set, in batches. `delta` runs on another thread, once per order, in key
    /// order.
    func mergeRows(_ delta: @escaping @Sendable (String) throws -> OrderFacts, orders sorted: [String]) throws {
        var clock = profiling ? currentMicros() : 0
        let load = try conn.prepare("SELECT rid, \(FactsCodec.rowColumns) FROM orders WHERE order_id = ?")
        let links = KeyLinks(conn: conn, orders: self)
        var transitions: [FactsTransition] = []
        var written = 0
        /// Reads the stored rows of a chunk (writer thread).
        func read(_ orders: ArraySlice<String>) throws -> [FlushRow] {
            try orders.map { order in
                load.bind(1, order)
                defer { load.reset() }
                guard try load.step() else { return FlushRow(order: order, rid: nil, old: nil) }
                let stored = FactsCodec.decodeStored(load, at: 1)
                return FlushRow(order: order, rid: load.int64(0), old: stored?.facts ?? OrderFacts(orderID: order), columnsHold: stored?.columnsHold ?? false)
            }
        }
        /// Writes a computed chunk, and the rollups every 8,192 orders and after the last (writer thread).
        func write(_ rows: [FlushRow]) throws {
            for r in rows {
                try writeRow(r.order, rid: r.rid, stored: r.columnsHold ? r.old : nil, facts: r.facts, encoded: r.encoded)
                if r.old == nil { try links.orderCreated(r.order) }
                written += 1
                guard let rollups else { continue }
                transitions.append(FactsTransition(old: r.old, new: r.facts))
                if transitions.count >= 8192 || written == sorted.count {
                    lap("refold-rows", &clock)
                    try rollups.apply(transitions)
                    transitions.removeAll(keepingCapacity: true)
                    lap("refold-rollups", &clock)
                }
            }
        }
        var pending: FlushComputation?
        var start = sorted.startIndex
        while start < sorted.endIndex {
            let end = min(start + Self.flushChunk, sorted.endIndex)
            let next = FlushComputation(try read(sorted[start..<end]), delta, inline: Self.serialFlush)
            start = end
            if let pending { try write(pending.result()) }
            pending = next
        }
        if let pending { try write(pending.result()) }
        lap("refold-rows", &clock)
    }
}

/// One chunk's facts computed on a global dispatch queue (not the Swift concurrency pool: the writer
/// thread waits for it); `result` waits for it.
private final class FlushComputation: @unchecked Sendable {
    private var rows: [OrdersTable.FlushRow]
    private var failure: (any Error)?
    private let done = DispatchSemaphore(value: 0)

    init(_ rows: [OrdersTable.FlushRow], _ delta: @escaping @Sendable (String) throws -> OrderFacts, inline: Bool = false) {
        self.rows = rows
        let work: @Sendable () -> Void = { [self] in
            do {
                for i in self.rows.indices {
                    let r = self.rows[i]
                    var facts = r.old ?? OrderFacts(orderID: r.order)
                    facts.merge(try delta(r.order))
                    self.rows[i].encoded = FactsCodec.encodeRow(facts)
                    self.rows[i].facts = facts
                }
            } catch {
                self.failure = error
            }
            self.done.signal()
        }
        if inline { work() } else { DispatchQueue.global().async(execute: work) }
    }

    /// The computed rows (the semaphore orders the other thread's writes before this read).
    func result() throws -> [OrdersTable.FlushRow] {
        done.wait()
        if let failure { throw failure }
        return rows
    }
}

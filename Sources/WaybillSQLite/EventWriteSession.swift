import CSQLite
import Foundation
import WaybillModel
import WaybillStore

/// One append with its order events folded into facts per order before it reaches the writer.
/// Its events are also grouped and compressed into blocks there (`EventBlocks`), assuming all are new;
/// the writer re-encodes only a block that holds a duplicate.
struct PreparedAppend: Sendable {
    let events: [CloudEvent]
    /// `DedupIndex.hash` of each event.
    let hashes: [Int64]
    let facts: [String: OrderFacts]
    /// Blocks of the events, except duplicates within the append and events stored before (as far as
    /// `RecentEventKeys` knows); the writer stores any of those that is new in blocks of its own.
    let blocks: [PreparedBlock]
}

/// The write path, run by the writer thread only: each batch of appends is deduplicated, appended to
/// `event_blocks`, folded into `orders` (and the rollups) and joined in `keys`, all in one transaction.
final class EventWriteSession {
    let conn: Connection
    let dedup: DedupIndex
    let orders: OrdersTable
    let links: KeyLinks
    let rollups: RollupTable?
    let spanWriter: SpanBlockWriter
    let blocks: EventBlockTable
    var eventDictionary: EventDictionary { blocks.dictionary }
    /// Span attributes that join a span to an order (`SpanCorrelation`), checked when the span is stored.
    let correlationKeys: [String]

    init(conn: Connection, rollup: (any FactsRollup)?, recentDedupLimit: Int = 300_000,
         correlationKeys: [String] = SpanCorrelation.defaultKeys, dictionary: EventDictionary = EventDictionary(),
         deferredFacts: OrdersTable.Deferral? = nil, rollupWindow: RollupWindow.Bounds? = nil, loadLock: LoadLock? = nil) throws {
        self.conn = conn
        self.correlationKeys = correlationKeys
        spanWriter = SpanBlockWriter(conn: conn)
        blocks = try EventBlockTable(conn: conn, dictionary: dictionary)
        dedup = try DedupIndex(conn: conn, recentLimit: recentDedupLimit, blocks: blocks)
        orders = OrdersTable(conn: conn, deferral: deferredFacts)
        links = KeyLinks(conn: conn, orders: orders)
        let rollupTable = rollup.map { RollupTable(conn: conn, rollup: $0) }
        rollups = rollupTable
        orders.rollups = rollupTable
        orders.dictionary = blocks.dictionary
        // Rows behind their events are repaired only when no running load or server holds them so (`LoadLock`).
        // A load (`waybill ingest --db`, with or without rollups) defers its rows and holds the lock while it
        // runs; a server with a rollup window holds it too.
        let free = loadLock?.tryLock() ?? true
        let loads = deferredFacts != nil
        if !free && loads {
            throw StoreError.unavailable("another process is loading or serving this store (waybill ingest --db, waybill serve): "
                                         + "run one load at a time, or send through the server with --url")
        }
        // A second writer of the store (the lock taken) writes its rollups in every commit, as before.
        let window = free && !loads ? rollupWindow.flatMap { b in rollupTable.map { RollupWindow(conn: conn, rollups: $0, bounds: b) } } : nil
        self.window = window
        if free {
            // A deferred load that stopped before writing its order rows (and rollups): refold them from the events.
            _ = try conn.transaction { [orders, blocks] in try orders.recoverPending(dictionary: blocks.dictionary) }
            // A server stopped mid-window left its journal: folded here when the layout is current, else dropped with the rows.
            try rollupTable?.rebuildIfStale()
            // Kept by a load or a windowed server for as long as it runs; anyone else lets it go at once.
            if !loads && window == nil { loadLock?.unlock() }
        }
        if rollupTable == nil { try RollupTable.forgetLayout(conn) }
        self.loadLock = loads || window != nil ? loadLock : nil
    }

    /// The server's rollup window (`RollupWindow`); nil: rollups are written in every commit (or per epoch of a load).
    let window: RollupWindow?

    /// Whether rollup rows wait for a fold of the window (read from any thread).
    var rollupsPending: Bool { window?.pending.load(ordering: .acquiring) ?? false }

    /// Folds the rollup window in a transaction of its own (a reader of rollup rows asks for it, or the writer is idle).
    func foldRollupWindow() throws {
        guard let window, !window.isEmpty || window.needsRecovery else { return }
        phase(nil)
        // Health is the appends' to report: a fold that commits while appends fail must not clear their fault.
        try conn.transaction(reportsHealth: false) { try window.fold() }
        phase("fold-rollups")
    }

    /// Held while this session defers rows (`LoadLock`), until `releaseLoadLock`.
    private let loadLock: LoadLock?

    /// Lets the next opener repair what this session left behind (rollups after a load without them); called
    /// once the writer has stopped and written every deferred row, so a later load of the store may open.
    func releaseLoadLock() { loadLock?.unlock() }


    /// Seconds spent in each phase of the write path, printed at close when `WAYBILL_WRITER_PROFILE` is set.
    var phaseSeconds: [String: Double] = [:]
    let profiling = ProcessInfo.processInfo.environment["WAYBILL_WRITER_PROFILE"] != nil
    private var phaseStart: Micros = 0
    private func phase(_ name: String?) {
        guard profiling else { return }
        let now = currentMicros()
        if let name { phaseSeconds[name, default: 0] += Double(now - phaseStart) / 1e6 }
        phaseStart = now
    }

    /// Writes several appends in one transaction; returns the outcome of each, in order.
    func write(_ prepared: [PreparedAppend]) throws -> [AppendResult] {
        phase(nil)
        let results = try conn.transaction {
            if orders.needsRecovery { try orders.recoverPending(dictionary: blocks.dictionary) }
            try window?.recoverIfNeeded()
            firstSeq = nil
            var results: [AppendResult] = []
            results.reserveCapacity(prepared.count)
            var fresh: [(batch: Int, index: Int)] = []
            var freshFlags: [[Bool]] = []
            freshFlags.reserveCapacity(prepared.count)
            var staged = StagedBlocks()
            for b in prepared.indices {
                let isFresh = try stage(prepared[b], into: &staged)
                freshFlags.append(isFresh)
                var r = AppendResult()
                for i in isFresh.indices {
                    if isFresh[i] {
                        r.accepted += 1
                        fresh.append((b, i))
                    } else {
                        r.duplicates += 1
                    }
                }
                results.append(r)
            }
            try insert(staged)
            phase("insert")
            if orders.deferral != nil {
                // A bulk load: facts merge into the epoch's in memory; rows and rollups are written once an epoch (`OrdersTable.Deferral`).
                try orders.deferFacts(factsDeltas(prepared, freshFlags), events: fresh.count, firstSeq: firstSeq)
            } else {
                let transitions = try orders.merge(factsDeltas(prepared, freshFlags), transitions: rollups != nil, created: links.orderCreated)
                if let window { try window.add(transitions) } else { try rollups?.apply(transitions) }
            }
            phase("facts")
            for f in fresh { try links.add(linksOf: prepared[f.batch].events[f.index]) }
            phase("links")
            return results
        }
        phase("commit")
        // The appends are committed: a fault in the upkeep below must not answer them as failed (their
        // clients would retry what is stored). A failed merge leaves the hashes in memory and is tried
        // again after the next commit; `health` has the fault.
        do {
            try dedup.growFilterIfFull()
            if dedup.mergeDue {
                try dedup.mergeRecent()
                phase("dedup-merge")
            }
        } catch StoreError.fault {}
        return results
    }

    /// The first event block of the open write.
    private var firstSeq: Int64?

    /// Writes the order rows and rollups a deferred load still owes (`OrdersTable.Deferral`), in a
    /// transaction of their own: before a write that is not an append of events, and when the store closes.
    func flushDeferredFacts() throws {
        try foldRollupWindow()
        guard orders.pendingCount > 0 else { return }
        phase(nil)
        try conn.transaction { try orders.flushAll() }
        phase("flush-deferred")
        if profiling {
            for (k, v) in orders.refoldSeconds { phaseSeconds[k, default: 0] += v }
            orders.refoldSeconds = [:]
        }
    }

    /// The blocks of a write, inserted once every append of it is staged, in the order that fills
    /// pages best (`EventBlockTable.packingOrder`).
    struct StagedBlocks {
        var blocks: [(subjects: [String], tmin: Micros, tmax: Micros, count: Int, body: [UInt8], hidden: [Int],
                      keys: [(hash: Int64, source: String, id: String)])] = []
        /// `(source, id)` of the events staged so far, by hash: a later append's copy is a duplicate.
        var keys: [Int64: [(source: String, id: String)]] = [:]
    }

    /// Stages the events of an append whose `(source, id)` is not stored yet (nor earlier in the write),
    /// in its prepared blocks; a block holding a duplicate is kept as compressed, its duplicates hidden.
    /// Returns which events are new.
    private func stage(_ p: PreparedAppend, into staged: inout StagedBlocks) throws -> [Bool] {
        let events = p.events
        var isFresh = [Bool](repeating: false, count: events.count)
        let hashes = p.hashes
        // Events are read in place, not copied (a copy retains and releases each of their members).
        try events.withUnsafeBufferPointer { events in
            for i in events.indices {
                let h = hashes[i]
                if try dedup.contains(source: events[i].source, id: events[i].id, hash: h) { continue }
                if let earlier = staged.keys[h], earlier.contains(where: { $0.source == events[i].source && $0.id == events[i].id }) { continue }
                staged.keys[h, default: []].append((events[i].source, events[i].id))
                isFresh[i] = true
            }
        }
        try blocks.learnDictionaryIfNeeded(from: events)
        var inBlock = [Bool](repeating: false, count: events.count)
        for block in p.blocks {
            for i in block.indexes { inBlock[i] = true }
            let kept = block.indexes.filter { isFresh[$0] }
            guard !kept.isEmpty else { continue }
            if kept.count == block.indexes.count {
                staged.blocks.append((block.subjects, block.tmin, block.tmax, kept.count, block.body, [],
                                      kept.map { (hashes[$0], events[$0].source, events[$0].id) }))
            } else {
                // Most blocks of interleaved arrival hold a resend: rather than compress the block again
                // here (on the one writer thread), store it as compressed with the duplicates marked hidden.
                let keptEvents = kept.map { events[$0] }
                let hidden = block.indexes.indices.filter { !isFresh[block.indexes[$0]] }
                staged.blocks.append((EventBlocks.subjects(keptEvents), keptEvents.map(\.time).min()!, keptEvents.map(\.time).max()!,
                                      kept.count, block.body, hidden, kept.map { (hashes[$0], events[$0].source, events[$0].id) }))
            }
        }
        // New events the caller took for sent ones (a hash held by mistake, or an event deleted since).
        let missed = events.indices.filter { isFresh[$0] && !inBlock[$0] }
        if !missed.isEmpty {
            let missedEvents = missed.map { events[$0] }
            for group in EventBlocks.group(missedEvents) {
                let enc = EventBlocks.encode(group.lazy.map { missedEvents[$0] }, dictionary: blocks.dictionary.forWriting)
                staged.blocks.append((EventBlocks.subjects(group.lazy.map { missedEvents[$0] }), enc.tmin, enc.tmax, group.count, enc.body, [],
                                      group.map { (hashes[missed[$0]], missedEvents[$0].source, missedEvents[$0].id) }))
            }
        }
        return isFresh
    }

    /// Inserts the staged blocks and records their events' hashes.
    private func insert(_ staged: StagedBlocks) throws {
        let order = blocks.packingOrder(staged.blocks.map { (count: $0.count, tmin: $0.tmin, tmax: $0.tmax, body: $0.body.count,
                                                              hidden: EventBlocks.hiddenColumn($0.hidden)?.count) })
        for k in order {
            let b = staged.blocks[k]
            let seq = try blocks.insert(subjects: b.subjects, tmin: b.tmin, tmax: b.tmax, count: b.count, body: b.body, hidden: b.hidden)
            if firstSeq == nil { firstSeq = seq }
            for k in b.keys { dedup.inserted(hash: k.hash, seq: seq, source: k.source, id: k.id) }
        }
    }

    /// The facts the fresh order events add, per order. Each append arrives with its events already
    /// folded per order (done on the caller's thread, off this one). Only the orders of an append that
    /// had a duplicate (about one in twenty events of interleaved arrival) are refolded, from their
    /// fresh events, so a duplicate never contributes; the rest take the folded facts as they are.
    private func factsDeltas(_ prepared: [PreparedAppend], _ isFresh: [[Bool]]) -> [String: OrderFacts] {
        var deltas: [String: OrderFacts] = [:]
        func add(_ subject: String, _ f: OrderFacts) {
            if deltas[subject] == nil { deltas[subject] = f } else { deltas[subject]!.merge(f) }
        }
        for b in prepared.indices {
            let events = prepared[b].events, flags = isFresh[b]
            var refold: Set<String> = []
            for i in events.indices where !flags[i] && events[i].type.hasPrefix("order.") { refold.insert(events[i].subject) }
            for (subject, partial) in prepared[b].facts where !refold.contains(subject) { add(subject, partial) }
            guard !refold.isEmpty else { continue }
            var again: [String: OrderFacts] = [:]
            for i in events.indices where flags[i] && events[i].type.hasPrefix("order.") && refold.contains(events[i].subject) {
                again[events[i].subject, default: OrderFacts(orderID: events[i].subject)].apply(events[i])
            }
            for (subject, f) in again { add(subject, f) }
        }
        return deltas
    }

    /// Stores several appends of spans in one transaction, one result each; `(trace id, span id)`
    /// already stored, by an earlier append or earlier in the same one, is a duplicate.
    func writeSpans(_ batches: [[Span]]) throws -> [AppendResult] {
        try conn.transaction {
            try batches.map { spans in
                try spanWriter.write(spans.map { ($0, SpanCorrelation.key(of: $0, keys: correlationKeys)) })
            }
        }
    }
}

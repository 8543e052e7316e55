import Foundation
import Synchronization
import WaybillModel
import WaybillStore

/// Batches concurrent appends into shared transactions (group commit) on one dedicated thread, so
/// blocking SQLite calls never occupy the Swift concurrency pool and throughput does not depend on
/// request size. The queue is bounded: past `maxQueuedEvents` an append is refused, not buffered.
/// While writes fail with a `StorageFault`, the idle writer probes with a small write every
/// `faultProbeSeconds`, so `health` recovers once the fault has passed even when no client writes.
/// With a `WALSyncer`, a commit is answered only once the syncer has synced the WAL that holds it; the
/// writer goes on with the next transaction meanwhile (its connection commits with `synchronous=NORMAL`).
final class GroupCommitWriter: @unchecked Sendable {
    private enum Job {
        case append(PreparedAppend, CheckedContinuation<AppendResult, any Error>)
        case delete(Micros, CheckedContinuation<Int, any Error>)
        case spans([Span], CheckedContinuation<AppendResult, any Error>)
        /// Any other write (alert records, outbox, an index), in its own transaction on the writer's connection.
        case transaction(@Sendable (Connection) throws -> Void, CheckedContinuation<Void, any Error>)
        /// Fold the rollup window (`RollupWindow`) for a reader of rollup rows, who waits for `done`.
        case fold(@Sendable ((any Error)?) -> Void)
    }

    /// How long the writer waits idle with a rollup window open before it folds it, so that other
    /// processes reading the store (which cannot ask it to) see rollups at most this far behind.
    private let idleFoldSeconds: Double

    private let session: EventWriteSession
    /// The events of recent appends, which later appends' blocks leave out (`RecentEventKeys`).
    private let recentKeys = RecentEventKeys()
    private let maxQueued: Int
    private let maxBatch: Int
    private let health: StorageHealthMonitor?
    private let faultProbeSeconds: Double
    /// Syncs the WAL after commits and answers them then; nil: the commit itself synced (or nothing must).
    let syncer: WALSyncer?
    private let life = ThreadLifecycle()
    private var cond: NSCondition { life.cond }
    private var stopping: Bool { get { life.stopping } set { life.stopping = newValue } }
    private var stopped: Bool { get { life.stopped } set { life.stopped = newValue } }
    private var jobs: [Job] = []
    private var queued = 0
    /// Tests hold the writer to fill its queue deterministically.
    private var paused: Bool { life.paused }
    private var thread: Thread?
    /// The last idle fold of the rollup window failed (writer thread only).
    private var foldFailed = false

    init(session: EventWriteSession, maxQueuedEvents: Int, maxBatchEvents: Int, health: StorageHealthMonitor? = nil,
         faultProbeSeconds: Double = 2, syncer: WALSyncer? = nil, idleFoldSeconds: Double = 0.2) {
        self.idleFoldSeconds = idleFoldSeconds
        self.session = session
        self.syncer = syncer
        self.maxQueued = maxQueuedEvents
        self.maxBatch = maxBatchEvents
        self.health = health
        self.faultProbeSeconds = faultProbeSeconds
        let t = Thread { [unowned self] in
            // Named from inside: on Linux, setting `name` before `start` renames the calling thread.
            Thread.current.name = "waybill-writer"
            self.run()
        }
        t.stackSize = 4 << 20
        thread = t
        t.start()
    }

    var queuedEvents: Int {
        cond.lock()
        defer { cond.unlock() }
        return queued
    }

    func append(_ events: [CloudEvent]) async throws -> AppendResult {
        // Folding facts here runs on the caller's thread, in parallel with the writer.
        let hashes = events.map { DedupIndex.hash(source: $0.source, id: $0.id) }
        let sent = recentKeys.takeIn(hashes)
        let prepared = PreparedAppend(events: events, hashes: hashes, facts: OrderFacts.fold(events),
                                      blocks: EventBlocks.prepare(events, hashes: hashes, skip: sent, dictionary: session.eventDictionary))
        do {
            return try await enqueue(counting: events.count) { .append(prepared, $0) }
        } catch {
            recentKeys.forget(hashes.indices.lazy.filter { !sent[$0] }.map { hashes[$0] })
            throw error
        }
    }

    func appendSpans(_ spans: [Span]) async throws -> AppendResult {
        try await enqueue(counting: spans.count) { .spans(spans, $0) }
    }

    func deleteBefore(_ cutoff: Micros) async throws -> Int {
        try await enqueue { .delete(cutoff, $0) }
    }

    /// Runs `body` in one transaction on the writer thread.
    func transaction(_ body: @escaping @Sendable (Connection) throws -> Void) async throws {
        try await enqueue { .transaction(body, $0) }
    }

    /// Queues a job, or refuses it at once when the store is closing. A job `counting` items is held to
    /// the queue bound and refused when it would overflow; any other job runs in a transaction of its own
    /// and is not counted.
    private func enqueue<T>(counting count: Int? = nil, _ job: @escaping (CheckedContinuation<T, any Error>) -> Job) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            cond.lock()
            if stopping {
                cond.unlock()
                c.resume(throwing: StoreError.unavailable("the store is closing"))
                return
            }
            if let count {
                // An oversized request is still taken when the queue is empty, so no request can starve.
                if queued > 0 && queued + count > maxQueued {
                    cond.unlock()
                    c.resume(throwing: StoreError.overloaded(retryAfterSeconds: 1))
                    return
                }
                queued += count
            }
            jobs.append(job(c))
            cond.signal()
            cond.unlock()
        }
    }

    func setPaused(_ p: Bool) { life.setPaused(p) }

    /// Blocks until the writer has folded its rollup window (ahead of queued appends: the reader only needs
    /// what is committed). Returns at once when nothing waits, or when the writer is paused or stopping.
    func foldRollups() throws {
        guard session.rollupsPending else { return }
        let done = DispatchSemaphore(value: 0)
        let failure = Mutex<(any Error)?>(nil)
        cond.lock()
        if stopping || paused {
            cond.unlock()
            return
        }
        jobs.insert(.fold({ e in
            failure.withLock { $0 = e }
            done.signal()
        }), at: 0)
        cond.signal()
        cond.unlock()
        done.wait()
        if let e = failure.withLock({ $0 }) { throw e }
    }

    /// Finishes every queued job, then ends the thread.
    func stop() {
        guard life.stopAndWait() else { return }
        syncer?.stop()
    }

    /// Answers a committed job: at once without a syncer, else once the WAL holding it is synced.
    private func answer(_ done: @escaping () -> Void, else failed: @escaping (any Error) -> Void) {
        if let syncer { syncer.submit(WALSyncer.Waiter(done: done, failed: failed)) } else { done() }
    }

    private func run() {
        while true {
            cond.lock()
            while (jobs.isEmpty || paused) && !stopping {
                if !paused, session.rollupsPending, health?.health.isHealthy != false {
                    // Idle with rollups waiting: fold them unless work comes first (a failed fold waits as a
                    // fault probe does before the next try; while writes fail, the probe below runs instead).
                    let wait = foldFailed ? max(idleFoldSeconds, faultProbeSeconds) : idleFoldSeconds
                    if !cond.wait(until: Date(timeIntervalSinceNow: wait)), jobs.isEmpty, !paused, !stopping {
                        cond.unlock()
                        do {
                            try session.foldRollupWindow()
                            foldFailed = false
                        } catch { foldFailed = true }
                        cond.lock()
                    }
                    continue
                }
                guard !paused, faultProbeSeconds > 0, health?.health.isHealthy == false else {
                    cond.wait()
                    continue
                }
                // Faulted and idle: wait for work, or probe when none comes.
                if !cond.wait(until: Date(timeIntervalSinceNow: faultProbeSeconds)), jobs.isEmpty, !paused, !stopping {
                    cond.unlock()
                    probe()
                    cond.lock()
                }
            }
            if jobs.isEmpty && stopping {
                // Rows a deferred load still holds; on failure the next open refolds them.
                try? session.flushDeferredFacts()
                stopped = true
                cond.broadcast()
                cond.unlock()
                return
            }
            // Take appends (or span appends) up to the batch size, or one delete or other transaction.
            var take: [Job] = []
            var n = 0
            if case .delete = jobs[0] {
                take.append(jobs.removeFirst())
            } else if case .fold = jobs[0] {
                take.append(jobs.removeFirst())
            } else if case .transaction = jobs[0] {
                take.append(jobs.removeFirst())
            } else if case .spans = jobs[0] {
                // Span appends share a transaction too, up to the batch size.
                while let first = jobs.first, case .spans(let ss, _) = first, take.isEmpty || n + ss.count <= maxBatch {
                    take.append(jobs.removeFirst())
                    n += ss.count
                }
            } else {
                while let first = jobs.first, case .append(let p, _) = first, take.isEmpty || n + p.events.count <= maxBatch {
                    take.append(jobs.removeFirst())
                    n += p.events.count
                }
            }
            cond.unlock()
            execute(take)
            cond.lock()
            queued -= n
            cond.unlock()
        }
    }

    /// A small write in a transaction of its own, which clears the fault when it commits; a failure is
    /// not counted again. It replaces one row of `meta`.
    private func probe() {
        let conn = session.conn
        try? conn.transaction(countsFaults: false) {
            try conn.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('write_probe', ?)").bind(1, String(currentMicros())).run()
        }
        // A sync that fails reports the fault again.
        answer({}, else: { _ in })
    }

    private func execute(_ take: [Job]) {
        if case .fold(let done) = take[0] {
            // Readers see a commit without waiting for its sync: what they read is committed either way.
            do {
                try session.foldRollupWindow()
                done(nil)
            } catch { done(error) }
            return
        }
        if case .delete(let cutoff, let c) = take[0] {
            do {
                let n = try session.deleteBefore(cutoff)
                answer({ c.resume(returning: n) }, else: { c.resume(throwing: $0) })
            } catch { c.resume(throwing: error) }
            return
        }
        if case .transaction(let body, let c) = take[0] {
            let conn = session.conn
            do {
                // Such a write may read the orders (a checkpoint, an alert's state): write deferred rows first.
                try session.flushDeferredFacts()
                try conn.transaction { try body(conn) }
                answer({ c.resume() }, else: { c.resume(throwing: $0) })
            } catch { c.resume(throwing: error) }
            return
        }
        let started = ContinuousClock.now
        let signal: String
        if case .spans = take[0] {
            signal = "spans"
            commit(take.compactMap { if case .spans(let s, let c) = $0 { return (s, c) } else { return nil } }, session.writeSpans)
        } else {
            signal = "events"
            commit(take.compactMap { if case .append(let p, let c) = $0 { return (p, c) } else { return nil } }, session.write)
        }
        if let observer = commitObserver.withLock({ $0 }) {
            let d = ContinuousClock.now - started
            observer(signal, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
        }
    }

    /// Told the duration of each group commit of events or spans (`/metrics`); nil: nobody listens.
    let commitObserver = Mutex<(@Sendable (String, Double) -> Void)?>(nil)

    /// Writes the batches of several jobs in one transaction and answers each job.
    private func commit<Batch>(_ jobs: [(Batch, CheckedContinuation<AppendResult, any Error>)], _ write: ([Batch]) throws -> [AppendResult]) {
        do {
            let results = try write(jobs.map(\.0))
            let continuations = jobs.map(\.1)
            answer({ for (c, r) in zip(continuations, results) { c.resume(returning: r) } },
                   else: { e in for c in continuations { c.resume(throwing: e) } })
        } catch {
            for j in jobs { j.1.resume(throwing: error) }
        }
    }
}

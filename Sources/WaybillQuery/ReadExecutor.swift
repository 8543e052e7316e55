import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Dedicated reader threads for store reads, awaited by async callers (as GRDB's reader pool does).
///
/// Store reads are synchronous. Run on a caller's thread, a long one (a service view over 500,000
/// spans, a KPI split, an alert replay) would hold a server event loop, and on two cores stall every
/// other request. Here they run on threads of their own; the caller suspends until the answer is ready.
///
/// Contract: at most `threads` reads run at once; later ones wait in arrival order. A read never runs
/// on the caller's thread. The threads keep the executor alive until `stop()`.
public final class ReadExecutor: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    private var stopped = false
    public let threads: Int

    /// - Parameter niceness: added to the threads' nice value on Linux (0 to 19): a background lane yields
    ///   the CPU to ingest and the event loops when they want it, and has it all when they do not.
    public init(threads: Int, name: String, niceness: Int32 = 0) {
        self.threads = max(1, threads)
        for i in 0..<self.threads {
            let t = Thread {
                // Named from inside: on Linux, setting `name` before `start` renames the calling thread.
                Thread.current.name = "\(name)-\(i)"
                if niceness > 0 { Self.lowerPriority(by: niceness) }
                self.work()
            }
            t.stackSize = 4 << 20
            t.start()
        }
    }

    static func lowerPriority(by niceness: Int32) {
        #if os(Linux)
        // On Linux the nice value is per thread, and `who` 0 names the calling thread.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        #endif
    }

    /// Lets queued reads finish, then ends the threads.
    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            submit { c.resume(with: Result { try body() }) }
        }
    }

    func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        queue.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while head == queue.count && !stopped { condition.wait() }
            if head == queue.count {
                condition.unlock()
                return
            }
            let job = queue[head]
            head += 1
            if head > 1024, head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            condition.unlock()
            job()
        }
    }
}

/// Where the reads of `LocalQueries` run: point reads (a trace, a page of search) apart from scans (a
/// service view, a KPI split or drill-down, an alert replay), so a scan never queues a trace lookup.
public struct ReadLanes: Sendable {
    public let point: ReadExecutor
    public let scan: ReadExecutor

    public init(point: ReadExecutor, scan: ReadExecutor) {
        self.point = point
        self.scan = scan
    }

    public func stop() {
        point.stop()
        scan.stop()
    }

    /// Two point readers and one scanner at nice 10: on a 2-core machine a scan takes what ingest and the
    /// event loops leave, and never more than one core.
    public static func standard(name: String = "waybill-read") -> ReadLanes {
        ReadLanes(point: ReadExecutor(threads: 2, name: name + "-point"), scan: ReadExecutor(threads: 1, name: name + "-scan", niceness: 10))
    }
}

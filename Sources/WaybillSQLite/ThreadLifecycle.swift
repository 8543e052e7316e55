import Foundation

/// The condition and the stop and pause flags of one of the store's own threads (the writer, the WAL
/// syncer, the checkpointer). The thread's loop reads and sets the flags under `cond`; `finished` is
/// its last step.
final class ThreadLifecycle: @unchecked Sendable {
    let cond = NSCondition()
    /// Asked to end; the thread finishes what it holds first.
    var stopping = false
    /// The thread has ended.
    var stopped = false
    /// Tests hold the thread to see what happens before it acts.
    var paused = false

    /// Asks the thread to end and waits until it has; false when it had ended already.
    @discardableResult
    func stopAndWait() -> Bool {
        cond.lock()
        defer { cond.unlock() }
        if stopped { return false }
        stopping = true
        cond.broadcast()
        while !stopped { cond.wait() }
        return true
    }

    func setPaused(_ p: Bool) {
        cond.lock()
        paused = p
        cond.broadcast()
        cond.unlock()
    }
}

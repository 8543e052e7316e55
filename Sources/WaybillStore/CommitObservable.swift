/// An engine whose writer commits in groups, reporting each group commit (for `/metrics`:
/// `waybill_writer_commit_seconds{signal}`).
///
/// Contract: after `observeCommits(f)`, `f` is called once per write transaction of events or spans,
/// after it committed or failed, with `"events"` or `"spans"` and its duration in seconds (the
/// transaction alone, not the time its jobs waited in the queue). A later call replaces the observer;
/// nil removes it. `f` runs on the writer's thread and must return quickly.
public protocol CommitObservable: Sendable {
    func observeCommits(_ observer: (@Sendable (_ signal: String, _ seconds: Double) -> Void)?)
}

/// A `ReadExecutor` is also a task executor: `withTaskExecutorPreference(executor) { ... }` runs the
/// body's async code (and the default actors it calls) on the executor's own threads instead of Swift's
/// cooperative pool. Code that calls the stores' synchronous readers from async functions (alert
/// evaluation, delivery, the storage conformance checks) runs so: a read that waits on the network
/// (the ClickHouse engine) then blocks one of these threads, never one of the pool's few (one per core),
/// which every request handler and task of the process shares.
extension ReadExecutor: TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        submit { job.runSynchronously(on: executor) }
    }
}

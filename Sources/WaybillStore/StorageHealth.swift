import Foundation
import WaybillModel

/// A storage fault that may pass: the write failed, nothing of it was stored, and the same write may
/// succeed later without a restart (`StoreError.fault`).
public struct StorageFault: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        /// No space left on the device (or a quota, or the engine's size limit).
        case diskFull = "disk_full"
        /// The operating system failed a read, write, sync or lock of a file.
        case ioError = "io_error"
        /// Another connection or process held the database lock past the busy timeout.
        case busy
        /// The database, its write-ahead log or a temporary file could not be opened.
        case cannotOpen = "cannot_open"
        /// The file or its filesystem is read-only (a filesystem remounted read-only after errors, permissions).
        case readOnly = "read_only"
        /// The engine could not allocate memory.
        case outOfMemory = "out_of_memory"
    }

    public var kind: Kind
    /// The engine's words, as safe to show as the kind (no SQL, no paths): `database or disk is full`.
    public var message: String
    /// Where it happened, for logs: the statement or file.
    public var context: String

    public init(kind: Kind, message: String, context: String = "") {
        self.kind = kind
        self.message = message
        self.context = context
    }

    /// A lock frees within seconds; space, files and memory take longer.
    public var retryAfterSeconds: Int { kind == .busy ? 1 : 5 }

    public var description: String { "\(kind.rawValue): \(message)" + (context.isEmpty ? "" : " in: \(context)") }
}

/// Whether a store's writes succeed (`WaybillStore.storageHealth`).
public struct StorageHealth: Sendable, Equatable {
    /// The fault of the last write while no write has succeeded since; nil when healthy.
    public var fault: StorageFault?
    /// When the first failed write of the current fault failed (wall clock).
    public var since: Micros?
    /// Writes failed with a fault since the store was opened, by kind (the engine's own probe writes excluded).
    public var faults: [StorageFault.Kind: Int]

    public init(fault: StorageFault? = nil, since: Micros? = nil, faults: [StorageFault.Kind: Int] = [:]) {
        self.fault = fault
        self.since = since
        self.faults = faults
    }

    public var isHealthy: Bool { fault == nil }
}

/// Keeps a store's `StorageHealth` from the outcome of each write transaction. Thread-safe.
public final class StorageHealthMonitor: @unchecked Sendable {
    private let lock = NSLock()
    private var state = StorageHealth()
    /// Set by `durabilityLost`: no later commit ends the fault.
    private var lost = false

    public init() {}

    public var health: StorageHealth { lock.withLock { state } }

    /// A write committed: the fault, if any, is over.
    public func writeSucceeded() {
        lock.withLock {
            guard !lost else { return }
            state.fault = nil
            state.since = nil
        }
    }

    /// Committed data could not be made durable (a failed `fdatasync`: the kernel may have dropped the
    /// pages it could not write). The fault stays until the store is opened again, whatever commits later.
    public func durabilityLost(_ fault: StorageFault, at time: Micros) {
        writeFailed(fault, at: time)
        lock.withLock { lost = true }
    }

    /// A write failed with `fault` at `time`. `counted` false for a probe, which only confirms the fault.
    public func writeFailed(_ fault: StorageFault, at time: Micros, counted: Bool = true) {
        lock.withLock {
            if state.since == nil { state.since = time }
            state.fault = fault
            if counted { state.faults[fault.kind, default: 0] += 1 }
        }
    }
}

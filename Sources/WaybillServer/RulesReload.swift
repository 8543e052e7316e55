import Dispatch
import Foundation
import Logging
import ServiceLifecycle
import WaybillAlerts
import WaybillModel
import WaybillQuery
import WaybillStore

/// Re-reading the alert rules while the server runs, as Prometheus and Alertmanager do:
/// `POST /api/v1/rules/reload` (an `admin` token) and `SIGHUP`. The files given at start (`--config`,
/// `$WAYBILL_ALERTS`) are read again and checked as at start; when they load, the new rules and hooks are in
/// force from the next evaluation and delivery on, and a changed load is written to the audit log
/// (`rules.load`). When they do not, nothing changes and the answer names the file, line, field and rule.
public struct RulesReloader: Sendable {
    /// The rules files and directories, as given at start.
    public let paths: [String]
    /// The server's alerting (rules evaluated here), or the rules it only answers for (a shared
    /// ClickHouse store's servers without `--alerts`).
    let alerting: Alerting?
    let view: AlertRulesView?
    let store: any AccessStore

    public init(paths: [String], alerting: Alerting?, view: AlertRulesView?, store: any AccessStore) {
        self.paths = paths
        self.alerting = alerting
        self.view = view
        self.store = store
    }

    /// Why a reload changed nothing.
    public enum Failure: Error, CustomStringConvertible {
        /// The server was started without rules files: there is nothing to read again.
        case noRulesFiles
        /// A file cannot be read or is not valid (file, line, field, rule).
        case invalid(AlertConfigError)
        /// The rules load but cannot be put in force (a hook's secret is not set, a rule's index).
        case refused(String)

        public var description: String {
            switch self {
            case .noRulesFiles:
                "this server was started without alert rules files (--config or WAYBILL_ALERTS), so it has none to read again; restart it with them"
            case .invalid(let e): "\(e.description); the rules in force are unchanged"
            case .refused(let m): "\(m); the rules in force are unchanged"
            }
        }
    }

    /// Reads the files again and puts their rules in force; `actor` is who asked, for the audit log.
    public func reload(actor: String, at now: Micros) async throws(Failure) -> RulesReloadDocument {
        guard !paths.isEmpty, alerting != nil || view != nil else { throw .noRulesFiles }
        let new: AlertConfig
        do { new = try AlertConfig.load(paths: paths) } catch let e as AlertConfigError { throw .invalid(e) } catch {
            throw .invalid(AlertConfigError(file: paths.joined(separator: ", "), field: "file", rule: "\(error)"))
        }
        let before = alerting?.config ?? view?.config
        do {
            if let alerting { try await alerting.reload(new) } else { try await view?.reload(new) }
        } catch {
            throw .refused("\(error)")
        }
        var audited = false
        do {
            audited = try await RulesAudit.record(paths: paths, rules: new.rules.count, hooks: new.hooks.count, store: store, actor: actor, at: now) != nil
        } catch {
            throw .refused("the rules are in force, but the audit log could not be written: \(error)")
        }
        return RulesReloadDocument(changed: before != new, rules: new.rules.map(\.name), hooks: new.hooks.count, files: paths, audited: audited)
    }
}

/// The answer to a rules reload.
public struct RulesReloadDocument: Codable, Sendable, Equatable {
    /// `reloaded` when the rules or hooks differ from the ones in force before, else `unchanged`.
    public var status: String
    /// The names of the rules now in force, in file order.
    public var rules: [String]
    public var hooks: Int
    public var files: [String]
    /// Whether an audit entry was written (the files differ from the last recorded load).
    public var audited: Bool

    public init(changed: Bool, rules: [String], hooks: Int, files: [String], audited: Bool) {
        status = changed ? "reloaded" : "unchanged"
        self.rules = rules
        self.hooks = hooks
        self.files = files
        self.audited = audited
    }
}

/// `SIGHUP` reloads the rules (`waybill serve`, `waybill demo`); without this service the signal would end
/// the process, as it does by default.
struct RulesReloadSignalService: Service {
    let reloader: RulesReloader
    let clock: any ServiceClock
    let logger: Logger

    func run() async throws {
        signal(SIGHUP, SIG_IGN)
        let (hangups, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler { continuation.yield() }
        source.resume()
        defer { source.cancel() }
        try? await cancelWhenGracefulShutdown {
            for await _ in hangups {
                do {
                    let doc = try await reloader.reload(actor: "signal:SIGHUP", at: clock.now())
                    logger.info("alert rules \(doc.status) on SIGHUP", metadata: [
                        "rules": "\(doc.rules.count)", "hooks": "\(doc.hooks)", "files": "\(doc.files.joined(separator: ", "))",
                    ])
                } catch {
                    logger.error("alert rules not reloaded on SIGHUP", metadata: ["error": "\(error)"])
                }
            }
        }
        continuation.finish()
    }
}

import Crypto
import Foundation
import WaybillModel
import WaybillStore

/// Alert rules are (re)loaded by starting the server with them. A start whose rules files differ from
/// those of the previous recorded load writes `rules.load` to the audit log, with who started it, how
/// many rules and hooks, the files and a SHA-256 over their contents; a start with the same files
/// writes nothing, so the log shows each change of rules once.
public enum RulesAudit {
    public static let action = "rules.load"

    /// SHA-256 over each rules file's name and bytes (a directory's `*.yaml`/`*.yml`, in name order).
    public static func fingerprint(paths: [String]) throws -> String {
        var hasher = SHA256()
        for file in try files(paths) {
            hasher.update(data: Data(file.utf8))
            hasher.update(data: try Data(contentsOf: URL(fileURLWithPath: file)))
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    static func files(_ paths: [String]) throws -> [String] {
        var out: [String] = []
        for p in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { continue }
            if isDir.boolValue {
                out += try FileManager.default.contentsOfDirectory(atPath: p)
                    .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { (p as NSString).appendingPathComponent($0) }
            } else {
                out.append(p)
            }
        }
        return out
    }

    /// Records the load when the rules differ from the last recorded load; returns the entry written, if any.
    @discardableResult
    public static func record(paths: [String], rules: Int, hooks: Int, store: any AccessStore, actor: String, at now: Micros) async throws -> AuditEntry? {
        let digest = try fingerprint(paths: paths)
        let last = try store.auditEntries(limit: 10_000).first { $0.action == action }
        if let last, last.detail.contains("sha256 \(digest)") { return nil }
        let entry = AuditEntry(at: now, actor: actor, action: action,
                               detail: "\(rules) rules, \(hooks) hooks from \(paths.joined(separator: ", ")) (sha256 \(digest))")
        try await store.appendAudit(entry)
        return entry
    }
}

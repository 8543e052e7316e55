import Foundation
import WaybillModel
import WaybillStore

/// The link groups of events.md section 3, as a union-find flattened on every write, in two tables
/// (schema 17):
/// - `key_groups` has one row per group: its root (the correlation id) and every other member key,
///   sorted (`members`: varint length and UTF-8 per key; lists written before schema 19 hold the root
///   too). A trace of a root (an order) is one seek.
/// - `keys` maps every other member to its group's root, so a trace of any key is at most two seeks,
///   never a walk. The root has no row there: its group row says it.
/// Before schema 17, `keys` held every member with an index by root (`keys_root`), so each key was
/// stored twice, and the root a third time per member: 19 bytes an event on interleaved data, against
/// about 11 this way. Retention keeps the links.
struct KeyLinks {
    let conn: Connection
    let orders: OrdersTable

    static let createSQL = "CREATE TABLE IF NOT EXISTS key_groups(root TEXT PRIMARY KEY, members BLOB NOT NULL) WITHOUT ROWID"

    /// Joins the subject of a fresh event with every key it links to.
    func add(linksOf e: CloudEvent) throws {
        guard e.data?["links"] != nil else { return }
        for l in e.links where l != e.subject { try union(e.subject, l) }
    }

    /// A key just became an order: if it is in a group, the group's root may change. Not when the key is
    /// its root already (the smallest order of the group, or the smallest key of a group with no order,
    /// which it still is): a rewrite would write the same rows. So it goes for most orders of a bulk
    /// load's epoch, whose links were joined while their facts waited in memory.
    func orderCreated(_ key: String) throws {
        if let root = try Self.root(of: key, conn), root != key || Self.rewriteRoots { try rewriteGroup([(root, try Self.members(of: root, conn))]) }
    }
    /// `WAYBILL_LINKS_REWRITE_ROOTS=1`: rewrite the group of a new order that is its root already (as before, to compare).
    static let rewriteRoots = ProcessInfo.processInfo.environment["WAYBILL_LINKS_REWRITE_ROOTS"] != nil

    /// Joins the groups of `a` and `b`. The root of a group is a function of its members only (the
    /// smallest key that is an order, else the smallest key), so it does not depend on arrival order.
    private func union(_ a: String, _ b: String) throws {
        let ra = try Self.root(of: a, conn), rb = try Self.root(of: b, conn)
        if let ra, ra == rb { return }
        var groups: [(root: String?, members: [String])] = []
        for (r, k) in [(ra, a), (rb, b)] { groups.append(r == nil ? (nil, [k]) : (r, try Self.members(of: r!, conn))) }
        try rewriteGroup(groups)
    }

    /// Writes the group that joins `groups` (each with its current root, nil for a key in none): the group
    /// row under its root, and a `keys` row for each member whose root changed.
    private func rewriteGroup(_ groups: [(root: String?, members: [String])]) throws {
        let all = Set(groups.flatMap(\.members)).sorted()
        var orderIDs: [String] = []
        for m in all where try orders.contains(m) { orderIDs.append(m) }
        guard let newRoot = orderIDs.first ?? all.first else { return }
        let dropGroup = try conn.prepare("DELETE FROM key_groups WHERE root = ?")
        for case let r? in groups.map(\.root) where r != newRoot {
            dropGroup.reset()
            try dropGroup.bind(1, r).run()
        }
        try conn.prepare("INSERT OR REPLACE INTO key_groups(root, members) VALUES(?, ?)").bind(1, newRoot)
            .bindBlob(2, Self.encodeMembers(all, root: newRoot)).run()
        let put = try conn.prepare("INSERT OR REPLACE INTO keys(key, root) VALUES(?, ?)")
        for g in groups {
            for m in g.members where m != newRoot && g.root != newRoot {
                put.reset()
                try put.bind(1, m).bind(2, newRoot).run()
            }
        }
        // The new root had a row as a member of a group that was not rooted at it.
        if groups.contains(where: { $0.root != nil && $0.root != newRoot && $0.members.contains(newRoot) }) {
            try conn.prepare("DELETE FROM keys WHERE key = ?").bind(1, newRoot).run()
        }
    }

    /// The root of the group holding `key`, nil when it is in none.
    static func root(of key: String, _ c: Connection) throws -> String? {
        let s = try c.prepare("SELECT root FROM keys WHERE key = ?")
        s.bind(1, key)
        let member = try s.step() ? s.text(0) : nil
        s.reset()
        if let member { return member }
        let g = try c.prepare("SELECT 1 FROM key_groups WHERE root = ?")
        g.bind(1, key)
        defer { g.reset() }
        return try g.step() ? key : nil
    }

    /// The members of the group rooted at `root`, sorted (empty when there is no such group).
    static func members(of root: String, _ c: Connection) throws -> [String] {
        let s = try c.prepare("SELECT members FROM key_groups WHERE root = ?")
        s.bind(1, root)
        defer { s.reset() }
        guard try s.step() else { return [] }
        return try decodeMembers(s.blob(0), root: root)
    }

    /// A group's stored member list: every member but the root (the row's key), sorted.
    static func encodeMembers(_ sorted: [String], root: String) -> [UInt8] {
        var list = ByteSink()
        for m in sorted where m != root { list.block(Array(m.utf8)) }
        return list.bytes
    }

    /// The sorted members of the group rooted at `root` from its stored list. Lists written before
    /// schema 19 hold the root too; later ones leave it out.
    static func decodeMembers(_ b: [UInt8], root: String) throws -> [String] {
        var r = ByteSource(b)
        var out: [String] = []
        do {
            while !r.atEnd { out.append(String(decoding: try r.block(), as: UTF8.self)) }
        } catch {
            throw StoreError.engine("a link group's member list does not decode: \(error)")
        }
        if !out.contains(root) { out.insert(root, at: out.firstIndex { $0 > root } ?? out.count) }
        return out
    }

    /// The group of `key` (its root and sorted members), nil when the key is in none (read side).
    static func group(of key: String, _ c: Connection) throws -> (root: String, members: [String])? {
        guard let root = try root(of: key, c) else { return nil }
        return (root, try members(of: root, c))
    }

    /// How many keys take part in a link (each group's members).
    static func count(_ c: Connection) throws -> Int {
        try c.scalarInt("SELECT (SELECT count(*) FROM keys) + (SELECT count(*) FROM key_groups)")
    }

    /// Schema 17: moves the groups of `keys` (every member with its root, indexed by root) into
    /// `key_groups`, drops the roots' own rows and the index. A store already converted (set back to an
    /// older version by hand, as tests of older conversions do) has no index left and is passed over.
    static func convertVersion16(_ c: Connection) throws {
        try c.exec(createSQL)
        guard try c.scalarInt("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'keys_root'") > 0 else { return }
        let sel = try c.prepare("SELECT root, key FROM keys ORDER BY root, key")
        let put = try c.prepare("INSERT OR REPLACE INTO key_groups(root, members) VALUES(?, ?)")
        var root: String?
        var list = ByteSink()
        func flush() throws {
            guard let root else { return }
            put.reset()
            try put.bind(1, root).bindBlob(2, list.bytes).run()
            list = ByteSink()
        }
        while try sel.step() {
            let r = sel.text(0)
            if r != root {
                try flush()
                root = r
            }
            list.block(Array(sel.text(1).utf8))
        }
        sel.reset()
        try flush()
        try c.exec("DELETE FROM keys WHERE key = root; DROP INDEX keys_root")
    }
}

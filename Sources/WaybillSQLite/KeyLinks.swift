import WaybillModel

/// The `keys` table: the link groups of events.md section 3, as a union-find flattened on every write.
/// Each key that takes part in a link points straight at its group's root (the correlation id), so a
/// trace is a few index seeks, never a walk. Retention keeps the links.
struct KeyLinks {
    let conn: Connection
    let orders: OrdersTable

    /// Joins the subject of a fresh event with every key it links to.
    func add(linksOf e: CloudEvent) throws {
        guard e.data?["links"] != nil else { return }
        for l in e.links where l != e.subject { try union(e.subject, l) }
    }

    /// A key just became an order: if it is in a group, the group's root may change.
    func orderCreated(_ key: String) throws {
        if let root = try root(of: key) { try rewriteGroup(members: try members(of: root)) }
    }

    /// Joins the groups of `a` and `b`. The root of a group is a function of its members only (the
    /// smallest key that is an order, else the smallest key), so it does not depend on arrival order.
    private func union(_ a: String, _ b: String) throws {
        let ra = try root(of: a), rb = try root(of: b)
        if let ra, ra == rb { return }
        var all = Set(try ra.map(members(of:)) ?? [a])
        all.formUnion(try rb.map(members(of:)) ?? [b])
        try rewriteGroup(members: Array(all))
    }

    private func root(of key: String) throws -> String? {
        let s = try conn.prepare("SELECT root FROM keys WHERE key = ?")
        s.bind(1, key)
        defer { s.reset() }
        return try s.step() ? s.text(0) : nil
    }

    private func members(of root: String) throws -> [String] {
        let s = try conn.prepare("SELECT key FROM keys WHERE root = ?")
        s.bind(1, root)
        defer { s.reset() }
        var out: [String] = []
        while try s.step() { out.append(s.text(0)) }
        return out
    }

    private func rewriteGroup(members: [String]) throws {
        var orderIDs: [String] = []
        for m in members where try orders.contains(m) { orderIDs.append(m) }
        guard let newRoot = orderIDs.min() ?? members.min() else { return }
        let s = try conn.prepare("INSERT OR REPLACE INTO keys(key, root) VALUES(?, ?)")
        for m in members {
            s.bind(1, m).bind(2, newRoot)
            try s.run()
        }
    }
}

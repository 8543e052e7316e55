import CSQLite
import Foundation
import WaybillModel

/// The writer's side of `span_dict`, the dictionary that codes span names, attribute keys and resources
/// (`SpanBlocks`): the id of every entry, and new entries entered in the open transaction. An entry never
/// changes once committed. Long strings, large resources and, past `maxEntries`, any new one stay in their
/// blocks instead, so a high-cardinality attribute cannot grow the dictionary without bound.
final class SpanDictionary: SpanBlockDictionary {
    /// The `kind` column.
    enum Kind: Int64 { case string = 0, resource = 1 }
    /// Strings longer than this (UTF-8 bytes) are never entered.
    static let maxString = 128
    /// Resources whose JSON is longer than this are never entered.
    static let maxResource = 8192
    /// Beyond this many entries, new strings and resources stay in their blocks.
    static let maxEntries = 200_000

    private let conn: Connection
    private var loaded = false
    private var ids: [String: Int64] = [:]
    private var resourceIDs: [[UInt8]: Int64] = [:]
    private var entries: [Int64: SpanBlocks.Entry] = [:]
    /// Entered by the open transaction, forgotten again if it rolls back.
    private var pending: [(Int64, String?, [UInt8]?)] = []
    /// The last resource coded: spans of one write mostly share it, and comparing it is cheaper than its JSON.
    private var lastResource: (service: String, attributes: [String: JSONValue], id: Int64)?

    init(conn: Connection) {
        self.conn = conn
        conn.onTransactionEnd { [weak self] committed in self?.transactionEnded(committed: committed) }
    }

    /// Reads every entry's id, once, before the first span is coded.
    func loadIfNeeded() throws {
        guard !loaded else { return }
        let s = try conn.prepare("SELECT id, kind, value FROM span_dict")
        defer { s.reset() }
        while try s.step() {
            let id = s.int64(0), value = s.blob(2)
            if s.int64(1) == Kind.resource.rawValue { resourceIDs[value] = id } else { ids[String(decoding: value, as: UTF8.self)] = id }
        }
        loaded = true
    }

    private func transactionEnded(committed: Bool) {
        if !committed {
            for (id, s, r) in pending {
                if let s { ids[s] = nil }
                if let r { resourceIDs[r] = nil }
                entries[id] = nil
            }
            lastResource = nil
        }
        pending.removeAll()
    }

    private var full: Bool { ids.count + resourceIDs.count >= Self.maxEntries }

    private func insert(kind: Kind, _ value: [UInt8]) throws -> Int64 {
        let s = try conn.prepare("INSERT INTO span_dict(kind, value) VALUES(?, ?)")
        s.bind(1, kind.rawValue).bindBlob(2, value)
        try s.run()
        return sqlite3_last_insert_rowid(conn.db)
    }

    func id(ofString s: String) throws -> Int64? {
        if let id = ids[s] { return id }
        guard s.utf8.count <= Self.maxString, !full else { return nil }
        let id = try insert(kind: .string, Array(s.utf8))
        ids[s] = id
        pending.append((id, s, nil))
        return id
    }

    func code(service: String, attributes: [String: JSONValue]) throws -> SpanBlocks.ResourceCode {
        if let l = lastResource, l.service == service, l.attributes == attributes { return .id(l.id) }
        let json = SpanBlocks.resourceJSON(service: service, attributes: attributes)
        let id: Int64
        if let known = resourceIDs[json] {
            id = known
        } else if json.count <= Self.maxResource, !full {
            id = try insert(kind: .resource, json)
            resourceIDs[json] = id
            pending.append((id, nil, json))
        } else {
            return .inBlock(json: json)
        }
        lastResource = (service, attributes, id)
        return .id(id)
    }

    /// The entry of `id`, to decode a block the writer rewrites.
    func entry(_ id: Int64) throws -> SpanBlocks.Entry {
        if let e = entries[id] { return e }
        let e = try Self.loadEntry(id, conn)
        entries[id] = e
        return e
    }

    /// Reads one entry through `c`.
    static func loadEntry(_ id: Int64, _ c: Connection) throws -> SpanBlocks.Entry {
        let s = try c.prepare("SELECT kind, value FROM span_dict WHERE id = ?")
        s.bind(1, id)
        defer { s.reset() }
        guard try s.step() else { throw ByteDecodingError("dictionary id \(id) is missing") }
        let kind = s.int64(0), value = s.blob(1)
        switch Kind(rawValue: kind) {
        case .string: return .string(String(decoding: value, as: UTF8.self))
        case .resource:
            let r = try SpanBlocks.resource(fromJSON: value)
            return .resource(service: r.service, attributes: r.attributes)
        case nil: throw ByteDecodingError("unknown dictionary kind \(kind)")
        }
    }
}

/// Dictionary entries by id, shared by the reader connections. Entries never change once committed.
final class SpanDictionaryCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [Int64: SpanBlocks.Entry] = [:]

    func entry(_ id: Int64, _ c: Connection) throws -> SpanBlocks.Entry {
        lock.lock()
        let hit = entries[id]
        lock.unlock()
        if let hit { return hit }
        let e = try SpanDictionary.loadEntry(id, c)
        lock.lock()
        entries[id] = e
        lock.unlock()
        return e
    }

    /// Every span stored for each trace, read through `c`.
    func spans(ofTraces traceIDs: [String], _ c: Connection) throws -> [Span] {
        try SpanBlocks.spans(ofTraces: traceIDs, c) { try entry($0, c) }
    }

    func decode(_ body: [UInt8], traceID: String, start: Micros, _ c: Connection) throws -> [Span] {
        try SpanBlocks.decodeBlock(body, traceID: traceID, start: start) { try entry($0, c) }
    }
}

import ArgumentParser
import Foundation
import WaybillModel
import WaybillQuery
import WaybillSQLite
import WaybillStore

struct SearchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Find orders by state, event type, source, warehouse, channel, region, time, or how long they have been stuck.",
        discussion: "Example: waybill search --state allocated --stuck 2h --warehouse DC-EAST")

    @Option(help: "Current state: \(Stage.allCases.map(\.name).joined(separator: ", ")).") var state: String?
    @Option(help: "Has an event of this type (e.g. order.exception).") var type: String?
    @Option(help: "Has an event from this source (e.g. wms-east).") var source: String?
    @Option(help: "Allocated or shipped from this warehouse.") var warehouse: String?
    @Option(help: "Order channel.") var channel: String?
    @Option(help: "Order region.") var region: String?
    @Option(parsing: .unconditional, help: "Activity at or after this time (RFC 3339 or relative like -7d).") var from: String?
    @Option(parsing: .unconditional, help: "Activity before this time.") var to: String?
    @Option(help: "In its current state for longer than this (e.g. 2h) and not invoiced or cancelled.") var stuck: String?
    @Option(parsing: .unconditional, help: "Evaluate --stuck and relative times as of this time instead of now.") var at: String?
    @Option(help: "Orders per page (1-10000).") var limit = 50
    @Option(help: "next_cursor of the previous page.") var cursor: String?
    @Option(help: "Run a saved search (queries/searches/NAME.yaml); flags given beside it override its filters.") var saved: String?
    @OptionGroup var savedQueries: SavedQueriesOptions

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: FormatOptions

    var parameters: [String: String] {
        var p: [String: String] = ["limit": String(limit)]
        let pairs: [(String, String?)] = [("state", state), ("type", type), ("source", source), ("warehouse", warehouse), ("channel", channel),
                                          ("region", region), ("from", from), ("to", to), ("stuck", stuck), ("at", at), ("cursor", cursor)]
        for (k, v) in pairs { if let v { p[k] = v } }
        return p
    }

    func run() async throws {
        let parameters = try savedParameters()
        let page = try await store.withQueries { try await $0.search(SearchRequest(parameters: parameters)) }
        if output.isJSON {
            try writeDocument(page)
            return
        }
        if page.orders.isEmpty {
            print("no orders match")
            return
        }
        var rows = [["ORDER", "STATE", "IN STATE SINCE", "FIRST EVENT", "LAST EVENT", "EVENTS", "WAREHOUSE", "CHANNEL"]]
        for o in page.orders {
            rows.append([o.correlationID, o.state?.name ?? "-", o.stateSince.map(RFC3339.format) ?? "-", RFC3339.format(o.firstEventAt),
                         RFC3339.format(o.lastEventAt), String(o.eventCount), o.warehouse ?? "-", o.channel ?? "-"])
        }
        print(table(rows), terminator: "")
        if let next = page.nextCursor { print("more: add --cursor \(next)") }
    }
}

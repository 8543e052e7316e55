import Synchronization
import WaybillModel
import WaybillStore

/// `GET /api/v1/stuck` and the overview's "stuck longest" panel: for each open lifecycle stage, the orders
/// whose current stage it is, longest there first.
public struct StuckRequest: Sendable, Equatable {
    /// The stages shown when none are asked: the open stages before shipment.
    public static let defaultStages: [Stage] = [.accepted, .validated, .allocated, .released, .picked, .packed]
    public var stages: [Stage]
    /// Orders listed per stage (1-100, default 5); counts cover them all.
    public var limit: Int

    public init(stages: [Stage] = defaultStages, limit: Int = 5) {
        self.stages = stages
        self.limit = limit
    }

    /// `stages=accepted,allocated&limit=5`.
    public init(parameters: [String: String]) throws(QueryFailure) {
        let p = try Parameters(parameters, known: ["stages", "limit"])
        self.init()
        if let s = p["stages"] { stages = try Self.stages(s) }
        if let l = p["limit"] {
            guard let n = Int(l), (1...100).contains(n) else { throw .badRequest(FieldError(field: "limit", rule: "must be an integer from 1 to 100")) }
            limit = n
        }
    }

    public static func stages(_ text: String) throws(QueryFailure) -> [Stage] {
        var out: [Stage] = []
        for name in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let st = Stage(name: name), st < .invoiced else {
                throw .badRequest(FieldError(field: "stages", rule: "'\(name)' is not an open stage; use some of "
                                             + Stage.allCases.filter { $0 < .invoiced }.map(\.name).joined(separator: ",")))
            }
            if !out.contains(st) { out.append(st) }
        }
        if out.isEmpty { throw .badRequest(FieldError(field: "stages", rule: "must name at least one stage")) }
        return out
    }

    public var parameters: [String: String] { ["stages": stages.map(\.name).joined(separator: ","), "limit": String(limit)] }
}

/// The orders stuck longest per stage, as of `at`.
public struct StuckDocument: Codable, Sendable, Equatable {
    public struct StageOrders: Codable, Sendable, Equatable {
        public struct Order: Codable, Sendable, Equatable {
            public var id: String
            /// When it reached the stage (RFC 3339) and how long ago, in seconds.
            public var since: String
            public var ageSeconds: Double

            enum CodingKeys: String, CodingKey { case id, since, ageSeconds = "age_s" }
        }

        public var stage: String
        /// Orders whose current stage this is (also those beyond the limit).
        public var count: Int
        public var orders: [Order]
    }

    public var at: String
    public var stages: [StageOrders]
}

private let preparedStages = Mutex<Set<Stage>>([])

extension LocalQueries {
    /// For each stage asked, the orders whose current stage it is (they reached it and neither a later
    /// lifecycle stage nor `cancelled`), longest there first. A store that reads orders by stage
    /// (`StageReader`, from an index it keeps with the facts) answers at once, from the first request on;
    /// another answers from its open-deadline index (`DeadlineReader`), built once per stage on first use.
    public func stuck(_ request: StuckRequest) async throws -> StuckDocument {
        let now = clock()
        if let reader = store as? any StageReader {
            let stages = try await lanes.point.run {
                try request.stages.map { stage in
                    let found = try reader.ordersInStage(stage, reachedBy: now, limit: request.limit)
                    return StuckDocument.StageOrders(stage: stage.name, count: found.count, orders: found.orders.map {
                        .init(id: $0.id, since: RFC3339.format($0.since), ageSeconds: Double(now - $0.since) / 1e6)
                    })
                }
            }
            return StuckDocument(at: RFC3339.format(now), stages: stages)
        }
        guard let reader = store as? any DeadlineReader else { throw QueryFailure.notAvailable("this store cannot list stuck orders") }
        for stage in request.stages where !preparedStages.withLock({ $0.contains(stage) }) {
            try await reader.prepareDeadlines(after: stage)
            preparedStages.withLock { _ = $0.insert(stage) }
        }
        let groups = try await lanes.point.run {
            try request.stages.map { stage in
                let next = Stage(rawValue: stage.rawValue + 1) ?? .invoiced
                return (stage, try reader.overdueOrders(after: stage, expect: next, cutoff: now, asOf: now, replay: false, groupBy: .none, limit: request.limit))
            }
        }
        let stages = try await lanes.point.run { [store] in
            try groups.map { stage, found in
                let g = found.first
                let orders = try (g?.orders ?? []).map { id -> StuckDocument.StageOrders.Order in
                    // When it reached the stage: the stage's time in its facts.
                    let since = try store.facts(orderID: id)?.stageTimes[stage] ?? g?.oldest ?? now
                    return .init(id: id, since: RFC3339.format(since), ageSeconds: Double(now - since) / 1e6)
                }
                return StuckDocument.StageOrders(stage: stage.name, count: g?.count ?? 0, orders: orders)
            }
        }
        return StuckDocument(at: RFC3339.format(now), stages: stages)
    }
}

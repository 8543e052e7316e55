import Foundation
import Hummingbird
import NIOCore
import WaybillAlerts
import WaybillModel
import WaybillQuery

extension WaybillAPI {
    /// Live alerts, or with `?at=TIME` a replay of every rule as of that instant; `?state=` filters.
    func getAlerts(_ req: Request) async throws -> Response {
        try jsonDocument(await queries.alerts(AlertsRequest(parameters: req.parameterDictionary)))
    }

    func getRules(_ req: Request) async throws -> Response {
        try jsonDocument(await queries.rules())
    }
}

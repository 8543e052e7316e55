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

    /// `POST /api/v1/rules/reload`: the rules files read again (see `RulesReloader`); 409 when the server
    /// has no rules files, 422 naming file, line, field and rule when they do not load.
    func reloadRules() async throws -> Response {
        guard let rulesReloader else { throw APIError(.conflict, RulesReloader.Failure.noRulesFiles.description) }
        let doc: RulesReloadDocument
        do throws(RulesReloader.Failure) {
            doc = try await rulesReloader.reload(actor: AccessControl.caller.map { "token:" + $0 } ?? "anonymous", at: clock())
        } catch {
            switch error {
            case .noRulesFiles: throw APIError(.conflict, error.description)
            case .invalid, .refused: throw APIError(.unprocessableContent, error.description)
            }
        }
        return try jsonDocument(doc)
    }
}

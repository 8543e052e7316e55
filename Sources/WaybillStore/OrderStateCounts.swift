import WaybillModel

/// Counts orders by their current state, for `/metrics` (`waybill_open_orders{state}`).
///
/// Contract: `orderCountsByState()` counts every order with facts once, under the stage of its facts'
/// `state` (nil for an order whose events named no stage yet); the counts add up to `StoreStats.orders`
/// as of the same committed state. It reads committed data only and never blocks writers.
public protocol OrderStateCounter: Sendable {
    func orderCountsByState() throws -> [Stage?: Int]
}

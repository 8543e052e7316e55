import Testing
import WaybillModel
@testable import WaybillServices
import WaybillTestSupport

@Suite struct FaultPlanTests {
    @Test func parsesTheDocumentedExample() throws {
        let plan = try FaultPlan.parse("erp-latency=2s@10:00-11:00,warehouse-outage=DC-EAST@2026-11-20T08:00/4h,short-pick=0.05,duplicate=0.03,reorder=0.1,late-arrival=0.02,erp-errors=0.1",
                                       warehouses: ["DC-EAST", "DC-WEST"])
        #expect(plan.erpLatency == [ERPLatencyFault(extra: 2 * second, window: .daily(start: 10 * 3600, end: 11 * 3600))])
        let outageStart = RFC3339.parse("2026-11-20T08:00:00Z")!
        #expect(plan.outages == [WarehouseOutage(warehouse: "DC-EAST", window: .interval(start: outageStart, end: outageStart + 4 * hour))])
        #expect(plan.shortPickRate == 0.05)
        #expect(plan.duplicateRate == 0.03)
        #expect(plan.reorderRate == 0.1)
        #expect(plan.lateArrivalRate == 0.02)
        #expect(plan.erpErrorRate == 0.1)
    }

    @Test func windowsAnswerWhetherAndUntilWhen() throws {
        let plan = try FaultPlan.parse("erp-latency=500ms@22:00-02:00,warehouse-outage=DC-WEST@2026-11-20T08:00:00+01:00/30m,erp-latency=1s")
        let day = RFC3339.parse("2026-11-20T00:00:00Z")!
        #expect(plan.erpExtraLatency(at: day + 23 * hour) == 1_500_000, "wrapping window plus an always-on one")
        #expect(plan.erpExtraLatency(at: day + 1 * hour) == 1_500_000)
        #expect(plan.erpExtraLatency(at: day + 12 * hour) == 1_000_000)
        #expect(plan.outageEnd("DC-WEST", at: day + 7 * hour + 10 * minute) == day + 7 * hour + 30 * minute)
        #expect(plan.outageEnd("DC-WEST", at: day + 7 * hour + 30 * minute) == nil, "the end is exclusive")
        #expect(plan.outageEnd("DC-EAST", at: day + 7 * hour + 10 * minute) == nil)
        #expect(TimeWindow.daily(start: 22 * 3600, end: 2 * 3600).end(containing: day + 23 * hour) == day + 26 * hour)
    }

    @Test func emptySpecMeansNoFaults() throws {
        #expect(try FaultPlan.parse("") == .none)
        #expect(try FaultPlan.parse("  ").isEmpty)
    }

    @Test(arguments: [
        ("short-pick=1.5", "short-pick=1.5", "between 0 and 1"),
        ("short-pick=lots", "short-pick=lots", "must be a number"),
        ("erp-latency=fast", "erp-latency=fast", "positive duration"),
        ("warehouse-outage=DC-MOON", "warehouse-outage=DC-MOON", "unknown warehouse \"DC-MOON\""),
        ("warehouse-outage=DC-EAST@2026-13-01T00:00/1h", "warehouse-outage=DC-EAST@2026-13-01T00:00/1h", "window start"),
        ("warehouse-outage=DC-EAST@2026-11-20T08:00/forever", "warehouse-outage=DC-EAST@2026-11-20T08:00/forever", "window length"),
        ("erp-latency=2s@10-11", "erp-latency=2s@10-11", "HH:MM-HH:MM"),
        ("erp-latency=2s@10:00-10:00", "erp-latency=2s@10:00-10:00", "empty"),
        ("duplicate=0.1,typo=3", "typo=3", "unknown fault \"typo\""),
        ("reorder", "reorder", "name=value"),
        ("reorder=", "reorder=", "missing value"),
        ("duplicate=0.1,,reorder=0.1", "", "empty item"),
        ("duplicate=0.1@10:00-11:00", "duplicate=0.1@10:00-11:00", "takes no @window"),
    ])
    func invalidSpecsNameTheBadItem(spec: String, item: String, reason: String) {
        do {
            _ = try FaultPlan.parse(spec, warehouses: ["DC-EAST", "DC-WEST"])
            Issue.record("\(spec) was accepted")
        } catch {
            #expect(error.item == item)
            #expect(error.reason.contains(reason), "\(error.reason)")
            #expect(error.description.hasPrefix("invalid fault \"\(item)\""))
        }
    }
}

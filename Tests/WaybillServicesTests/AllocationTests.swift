import Foundation
import Testing
import WaybillModel
@testable import WaybillServices
import WaybillTestSupport

@Suite struct AllocationTests {
    func ledger(_ stock: [(String, String, Int)], safety: Int = 0) -> InventoryLedger {
        var l = InventoryLedger(network: smallNetwork())
        for (w, s, q) in stock { try! l.stock(warehouse: w, sku: s, onHand: q, safetyStock: safety) }
        return l
    }

    @Test func singleNodeThatServesEverythingWinsByDistance() {
        var l = ledger([("DC-EAST", "A", 5), ("DC-EAST", "B", 5), ("DC-WEST", "A", 5), ("DC-WEST", "B", 5)])
        let d = l.allocate(AllocationRequest(orderID: "o", region: "east", lines: [AllocationLine(line: 1, sku: "A", qty: 2), AllocationLine(line: 2, sku: "B", qty: 1)]))
        #expect(d.warehouses == ["DC-EAST"])
        #expect(d.primaryWarehouse == "DC-EAST")
        #expect(d.backordered.isEmpty)
        let w = l.allocate(AllocationRequest(orderID: "p", region: "west", lines: [AllocationLine(line: 1, sku: "A", qty: 1)]))
        #expect(w.warehouses == ["DC-WEST"])
        #expect(l.position(warehouse: "DC-EAST", sku: "A")?.reserved == 2)
    }

    @Test func farNodeThatServesAllBeatsNearNodeThatServesPart() {
        var l = ledger([("DC-EAST", "A", 5), ("DC-WEST", "A", 5), ("DC-WEST", "B", 5)])
        let d = l.allocate(AllocationRequest(orderID: "o", region: "east", lines: [AllocationLine(line: 1, sku: "A", qty: 2), AllocationLine(line: 2, sku: "B", qty: 1)]))
        #expect(d.warehouses == ["DC-WEST"])
        #expect(!d.isSplit)
    }

    @Test func splitsWhenNoSingleNodeCanServeAndBackordersTheRest() {
        var l = ledger([("DC-EAST", "A", 3), ("DC-CENTRAL", "B", 1), ("DC-WEST", "A", 1)])
        let d = l.allocate(AllocationRequest(orderID: "o", region: "east", lines: [AllocationLine(line: 1, sku: "A", qty: 5), AllocationLine(line: 2, sku: "B", qty: 2)]))
        #expect(d.isSplit)
        #expect(Set(d.warehouses) == ["DC-EAST", "DC-CENTRAL", "DC-WEST"])
        #expect(d.primaryWarehouse == "DC-EAST")
        #expect(d.backordered == [AllocationLine(line: 1, sku: "A", qty: 1), AllocationLine(line: 2, sku: "B", qty: 1)])
        #expect(d.allocatedUnits == 5)
    }

    @Test func safetyStockAndExclusionsAreRespected() {
        var l = ledger([("DC-EAST", "A", 5), ("DC-WEST", "A", 5)], safety: 2)
        #expect(l.availableToPromise(sku: "A") == 6)
        let d = l.allocate(AllocationRequest(orderID: "o", region: "east", lines: [AllocationLine(line: 1, sku: "A", qty: 4)], excluding: ["DC-EAST"]))
        #expect(d.placements == [Placement(line: 1, sku: "A", warehouse: "DC-WEST", qty: 3)])
        #expect(d.backordered == [AllocationLine(line: 1, sku: "A", qty: 1)])
    }

    @Test func unknownSKUIsBackorderedNotCrashed() {
        var l = ledger([("DC-EAST", "A", 5)])
        let d = l.allocate(AllocationRequest(orderID: "o", region: "nowhere", lines: [AllocationLine(line: 1, sku: "ZZZ", qty: 1)]))
        #expect(d.placements.isEmpty)
        #expect(d.primaryWarehouse == nil)
        #expect(d.backordered.count == 1)
    }

    @Test func releaseOfMoreThanReservedFailsAndChangesNothing() throws {
        var l = ledger([("DC-EAST", "A", 5), ("DC-EAST", "B", 5)])
        _ = l.allocate(AllocationRequest(orderID: "o", region: "east", lines: [AllocationLine(line: 1, sku: "A", qty: 2), AllocationLine(line: 2, sku: "B", qty: 1)]))
        let bad = [Placement(line: 1, sku: "A", warehouse: "DC-EAST", qty: 2), Placement(line: 2, sku: "B", warehouse: "DC-EAST", qty: 3)]
        #expect(throws: InventoryError.notReserved(warehouse: "DC-EAST", sku: "B", requested: 3, reserved: 1)) { try l.release(bad) }
        #expect(l.position(warehouse: "DC-EAST", sku: "A")?.reserved == 2)
        #expect(throws: InventoryError.unknownWarehouse("DC-MOON")) { try l.release(warehouse: "DC-MOON", sku: "A", qty: 1) }
    }

    @Test func shipAndWriteOffReduceOnHandAndReserved() throws {
        var l = ledger([("DC-EAST", "A", 5)])
        _ = l.allocate(AllocationRequest(orderID: "o", region: "east", lines: [AllocationLine(line: 1, sku: "A", qty: 4)]))
        try l.ship(warehouse: "DC-EAST", sku: "A", qty: 3)
        try l.writeOff(warehouse: "DC-EAST", sku: "A", qty: 1)
        #expect(l.position(warehouse: "DC-EAST", sku: "A") == InventoryPosition(onHand: 1, reserved: 0))
    }

    @Test func replenishmentOrdersUpToPolicyAndReceiptMakesStockAvailable() throws {
        var l = InventoryLedger(network: smallNetwork())
        try l.stock(warehouse: "DC-EAST", sku: "A", onHand: 4, policy: ReplenishmentPolicy(reorderPoint: 5, orderUpTo: 20))
        try l.stock(warehouse: "DC-WEST", sku: "A", onHand: 30, policy: ReplenishmentPolicy(reorderPoint: 5, orderUpTo: 20))
        let orders = l.planReplenishment()
        #expect(orders == [ReplenishmentOrder(warehouse: "DC-EAST", sku: "A", qty: 16)])
        #expect(l.position(warehouse: "DC-EAST", sku: "A")?.inbound == 16)
        #expect(l.planReplenishment().isEmpty, "inbound counts towards the position, so no second order")
        try l.receive(warehouse: "DC-EAST", sku: "A", qty: 16)
        #expect(l.position(warehouse: "DC-EAST", sku: "A") == InventoryPosition(onHand: 20, inbound: 0))
    }

    /// Random stock, random orders, random releases and shipments, over many seeds.
    @Test(arguments: 0..<40) func invariantsHoldUnderRandomWorkload(seed: Int) throws {
        var rng = Xoshiro256(seed: UInt64(seed))
        let net = smallNetwork()
        var l = InventoryLedger(network: net)
        let skus = (0..<8).map { "S\($0)" }
        for w in net.warehouses { for s in skus where rng.chance(0.7) {
            try l.stock(warehouse: w.id, sku: s, onHand: rng.below(12), safetyStock: rng.below(3))
        } }
        let initialOnHand = l.allPositions.reduce(0) { $0 + $1.position.onHand }
        var held: [Placement] = []
        var shipped = 0
        for i in 0..<200 {
            let before = l
            let lines = (0..<(1 + rng.below(4))).map { AllocationLine(line: $0 + 1, sku: skus[rng.below(skus.count)], qty: 1 + rng.below(6)) }
            let excluding = rng.chance(0.2) ? [net.warehouses[rng.below(3)].id] : []
            let d = l.allocate(AllocationRequest(orderID: "o\(i)", region: rng.chance(0.5) ? "east" : "west", lines: lines, excluding: excluding))
            // Never more than was available to promise, never from an excluded node.
            for p in d.placements {
                #expect(p.qty > 0)
                #expect(!excluding.contains(p.warehouse))
            }
            for (w, s, pos) in l.allPositions {
                let old = before.position(warehouse: w, sku: s)!
                #expect(pos.reserved - old.reserved <= old.availableToPromise)
                #expect(pos.reserved <= pos.onHand)
                #expect(pos.reserved >= 0)
            }
            // Placed plus backordered covers exactly what was asked, line by line.
            for line in lines {
                let placed = d.placements.filter { $0.line == line.line }.reduce(0) { $0 + $1.qty }
                let back = d.backordered.filter { $0.line == line.line }.reduce(0) { $0 + $1.qty }
                #expect(placed + back == line.qty)
            }
            #expect(d.warehouses.count <= l.scoring.maxSplit)
            held += d.placements
            // Release or ship a random held reservation now and then.
            if !held.isEmpty, rng.chance(0.4) {
                let p = held.remove(at: rng.below(held.count))
                if rng.chance(0.5) { try l.release([p]) } else { try l.ship(warehouse: p.warehouse, sku: p.sku, qty: p.qty); shipped += p.qty }
            }
        }
        // Reservations balance: what is still held is exactly what is reserved.
        for (w, s, pos) in l.allPositions {
            let outstanding = held.filter { $0.warehouse == w && $0.sku == s }.reduce(0) { $0 + $1.qty }
            #expect(pos.reserved == outstanding)
        }
        try l.release(held)
        #expect(l.allPositions.allSatisfy { $0.position.reserved == 0 })
        #expect(l.allPositions.reduce(0) { $0 + $1.position.onHand } == initialOnHand - shipped)
    }

    @Test func concurrentAllocationNeverOversells() {
        let service = AllocationService(network: smallNetwork())
        for w in ["DC-EAST", "DC-CENTRAL", "DC-WEST"] { try! service.stock(warehouse: w, sku: "HOT", onHand: 100) }
        let decisions = LockedBox<[AllocationDecision]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            var local: [AllocationDecision] = []
            for i in 0..<100 {
                local.append(service.allocate(AllocationRequest(orderID: "w\(worker)-\(i)", region: worker % 2 == 0 ? "east" : "west",
                                                                lines: [AllocationLine(line: 1, sku: "HOT", qty: 1 + i % 3)])))
            }
            decisions.mutate { $0 += local }
        }
        let all = decisions.value
        let allocated = all.reduce(0) { $0 + $1.allocatedUnits }
        #expect(allocated == 300, "demand (1600 units) exceeds stock, so exactly all 300 are promised, never more")
        let snapshot = service.snapshot()
        #expect(snapshot.allPositions.allSatisfy { $0.position.reserved == $0.position.onHand })
        try! service.release(all.flatMap(\.placements))
        #expect(service.availableToPromise(sku: "HOT") == 300)
    }
}

final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var v: T
    init(_ v: T) { self.v = v }
    func mutate(_ f: (inout T) -> Void) { lock.lock(); f(&v); lock.unlock() }
    var value: T { lock.lock(); defer { lock.unlock() }; return v }
}

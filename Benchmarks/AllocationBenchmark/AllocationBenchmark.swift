import Foundation
import WaybillModel
import WaybillServices

/// A micro-benchmark of the allocation service: `swift run -c release allocation-benchmark [DECISIONS] [SEED]`.
/// Not part of the product; no test asserts on its figure.
enum AllocationBenchmark {
    /// Allocation decisions per second, single-threaded, through the locked `AllocationService` on the
    /// standard network with 2,000 SKUs. Each decision reserves stock; the reservations of the decision
    /// 1,000 earlier are released in the same loop, so stock stays in steady state (the release is timed too).
    static func run(orders: Int, seed: UInt64 = 1) -> Double {
        let network = FulfilmentNetwork.standard
        let service = AllocationService(network: network)
        var rng = Xoshiro256(seed: seed)
        let skus = (0..<2000).map { "SKU-" + String(10000 + $0) }
        for w in network.warehouses {
            for s in skus where rng.chance(0.75) {
                try! service.stock(warehouse: w.id, sku: s, onHand: 20 + rng.below(200), safetyStock: rng.below(5))
            }
        }
        let regions = network.regions.map(\.name)
        let requests = (0..<max(1, orders)).map { i in
            AllocationRequest(orderID: "B-\(i)", region: regions[rng.below(regions.count)],
                              lines: (0..<(1 + rng.below(4))).map { AllocationLine(line: $0 + 1, sku: skus[rng.below(skus.count)], qty: 1 + rng.below(3)) })
        }
        let window = 1000
        var held = [[Placement]](repeating: [], count: window)
        let clock = ContinuousClock()
        let started = clock.now
        for (i, r) in requests.enumerated() {
            let d = service.allocate(r)
            let slot = i % window
            if !held[slot].isEmpty { try! service.release(held[slot]) }
            held[slot] = d.placements
        }
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        return Double(requests.count) / max(seconds, 1e-9)
    }
}

let arguments = CommandLine.arguments.dropFirst()
guard let decisions = Int(arguments.first ?? "200000"), decisions > 0, let seed = UInt64(arguments.dropFirst().first ?? "1") else {
    print("usage: allocation-benchmark [DECISIONS (default 200000)] [SEED (default 1)]")
    exit(2)
}
let rate = AllocationBenchmark.run(orders: decisions, seed: seed)
print("allocation decisions/s: \(Int(rate)) (\(decisions) orders, one thread)")

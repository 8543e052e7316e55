import Foundation
import WaybillModel

/// A demand region: where orders ship to.
public struct Region: Codable, Hashable, Sendable {
    public var name: String
    public var latitude: Double
    public var longitude: Double
    public init(name: String, latitude: Double, longitude: Double) {
        self.name = name
        self.latitude = latitude
        self.longitude = longitude
    }
}

/// A fulfilment node (distribution centre) with its operating characteristics.
public struct Warehouse: Codable, Hashable, Sendable {
    public var id: String
    /// The `source` of its WMS events and the `service.name` of its spans (`wms-east` for `DC-EAST`).
    public var system: String
    public var latitude: Double
    public var longitude: Double
    /// Handling cost per unit shipped, in currency units.
    public var handlingCostPerUnit: Double
    /// Units it can pick per day; the allocator prefers nodes with spare capacity.
    public var dailyCapacityUnits: Int
    /// Median minutes from release to picked, and from picked to packed.
    public var pickMinutes: Double
    public var packMinutes: Double
    /// Carrier pickups, as seconds after midnight UTC, ascending; the last one is the day's cut-off.
    public var pickupsUTC: [Int]

    public init(id: String, system: String? = nil, latitude: Double, longitude: Double, handlingCostPerUnit: Double,
                dailyCapacityUnits: Int, pickMinutes: Double, packMinutes: Double, pickupsUTC: [Int])
    {
        self.id = id
        self.system = system ?? "wms-" + (id.split(separator: "-").last.map { $0.lowercased() } ?? id.lowercased())
        self.latitude = latitude
        self.longitude = longitude
        self.handlingCostPerUnit = handlingCostPerUnit
        self.dailyCapacityUnits = dailyCapacityUnits
        self.pickMinutes = pickMinutes
        self.packMinutes = packMinutes
        self.pickupsUTC = pickupsUTC.sorted()
    }

    /// The first carrier pickup at or after `t`.
    public func nextPickup(after t: Micros) -> Micros {
        let day = t >= 0 ? t / 86_400_000_000 : (t - 86_399_999_999) / 86_400_000_000
        let midnight = day * 86_400_000_000
        for p in pickupsUTC {
            let at = midnight + Micros(p) * 1_000_000
            if at >= t { return at }
        }
        return midnight + 86_400_000_000 + Micros(pickupsUTC.first ?? 0) * 1_000_000
    }
}

/// Warehouses and regions with the distance and shipping cost between every pair.
public struct FulfilmentNetwork: Codable, Hashable, Sendable {
    public var warehouses: [Warehouse]
    public var regions: [Region]
    /// Shipping cost per unit per 1000 km.
    public var freightPerUnitPer1000Km: Double

    public init(warehouses: [Warehouse], regions: [Region], freightPerUnitPer1000Km: Double = 1.8) {
        self.warehouses = warehouses
        self.regions = regions
        self.freightPerUnitPer1000Km = freightPerUnitPer1000Km
    }

    public func warehouseIndex(_ id: String) -> Int? { warehouses.firstIndex { $0.id == id } }
    public func regionIndex(_ name: String) -> Int? { regions.firstIndex { $0.name == name } }

    /// Great-circle distance in km.
    public func distanceKm(region: Int, warehouse: Int) -> Double {
        let r = regions[region], w = warehouses[warehouse]
        let rad = Double.pi / 180
        let dLat = (w.latitude - r.latitude) * rad, dLon = (w.longitude - r.longitude) * rad
        let a = sin(dLat / 2) * sin(dLat / 2) + cos(r.latitude * rad) * cos(w.latitude * rad) * sin(dLon / 2) * sin(dLon / 2)
        return 6371 * 2 * atan2(a.squareRoot(), (1 - a).squareRoot())
    }

    /// Cost to ship one unit from a warehouse to a region.
    public func shippingCostPerUnit(region: Int, warehouse: Int) -> Double {
        warehouses[warehouse].handlingCostPerUnit + distanceKm(region: region, warehouse: warehouse) / 1000 * freightPerUnitPer1000Km
    }

    /// The demo network: four US distribution centres and five demand regions.
    public static let standard = FulfilmentNetwork(
        warehouses: [
            Warehouse(id: "DC-EAST", latitude: 40.2, longitude: -74.7, handlingCostPerUnit: 1.10, dailyCapacityUnits: 60_000,
                      pickMinutes: 45, packMinutes: 12, pickupsUTC: [15 * 3600, 22 * 3600]),
            Warehouse(id: "DC-WEST", latitude: 34.0, longitude: -117.4, handlingCostPerUnit: 1.25, dailyCapacityUnits: 50_000,
                      pickMinutes: 50, packMinutes: 15, pickupsUTC: [18 * 3600, 23 * 3600 + 30 * 60]),
            Warehouse(id: "DC-CENTRAL", latitude: 39.1, longitude: -94.6, handlingCostPerUnit: 0.95, dailyCapacityUnits: 70_000,
                      pickMinutes: 40, packMinutes: 10, pickupsUTC: [16 * 3600, 23 * 3600]),
            Warehouse(id: "DC-SOUTH", latitude: 33.7, longitude: -84.4, handlingCostPerUnit: 1.00, dailyCapacityUnits: 45_000,
                      pickMinutes: 55, packMinutes: 14, pickupsUTC: [15 * 3600 + 30 * 60, 22 * 3600 + 30 * 60]),
        ],
        regions: [
            Region(name: "northeast", latitude: 41.5, longitude: -73.5),
            Region(name: "southeast", latitude: 31.0, longitude: -83.0),
            Region(name: "midwest", latitude: 41.9, longitude: -88.0),
            Region(name: "southwest", latitude: 32.5, longitude: -100.0),
            Region(name: "west", latitude: 37.5, longitude: -121.0),
        ])
}

import Testing
@testable import WaybillClickHouse

import Testing
@testable import WaybillReports

import Foundation
import Testing
import WaybillTestSupport

/// Headless Chromium (Debian's `chromium`, installed in CI by `.ci/setup.d/40-chromium.sh`) for the page
/// tests: the DOM after load, and a screenshot kept under `$WAYBILL_ARTIFACTS/pages` (default
/// `.build/test-artifacts/pages`, beside the configuration folders of `.build`).
enum HeadlessChromium {
    static var path: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static var artifacts: URL {
        if let dir = ProcessInfo.processInfo.environment["WAYBILL_ARTIFACTS"] { return URL(fileURLWithPath: dir).appendingPathComponent("pages") }
        var dir = ServerProcess.productsFolder
        while dir.path != "/" && dir.lastPathComponent != ".build" { dir = dir.deletingLastPathComponent() }
        if dir.path == "/" { dir = FileManager.default.temporaryDirectory }
        return dir.appendingPathComponent("test-artifacts").appendingPathComponent("pages")
    }

    /// Renders `url`: saves `name.png` (1400 wide, `height` high) and returns the DOM after load.
    /// Chromium runs off the cooperative pool (`offThePool`): a screenshot takes seconds on a loaded machine.
    static func render(_ chromium: String, _ url: String, name: String, height: Int) async throws -> String {
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        let png = artifacts.appendingPathComponent(name + ".png").path
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: profile) }
        let common = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
                      "--user-data-dir=" + profile, "--window-size=1400,\(height)"]
        let shot = try await offThePool { try run(chromium, common + ["--screenshot=" + png, url]) }
        #expect(FileManager.default.fileExists(atPath: png), "no screenshot of \(url): \(shot)")
        print("page screenshot: \(png)")
        return try await offThePool { try run(chromium, common + ["--dump-dom", url]) }
    }

    static func run(_ tool: String, _ args: [String]) throws -> String {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-out-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        let h = try FileHandle(forWritingTo: out)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        p.standardOutput = h
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        try h.close()
        return try String(contentsOf: out, encoding: .utf8)
    }
}

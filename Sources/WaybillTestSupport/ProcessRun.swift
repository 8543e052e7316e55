import Foundation

/// The `waybill` binary built with the tests, run as a user would: `$WAYBILL_BINARY`, else beside the
/// test bundle (SwiftPM puts every product of a configuration in `.build/<configuration>/`).
public enum WaybillBinary {
    public static var url: URL {
        if let path = ProcessInfo.processInfo.environment["WAYBILL_BINARY"] { return URL(fileURLWithPath: path) }
        return productsFolder.appendingPathComponent("waybill")
    }

    /// The folder of the configuration's products (`.build/debug`, `.build/release`).
    public static var productsFolder: URL {
        #if os(macOS)
        if let tests = Bundle.allBundles.first(where: { $0.bundlePath.hasSuffix(".xctest") }) { return tests.bundleURL.deletingLastPathComponent() }
        #endif
        return Bundle.main.bundleURL
    }

    public static var exists: Bool { FileManager.default.isExecutableFile(atPath: url.path) }
}

/// One finished run of a program, its output captured.
public struct ProcessRun: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    /// Runs `executable` to its end. Output goes to files rather than pipes: nothing blocks on a full
    /// pipe, and reading a file is not interrupted by the signals of other tests' processes (Foundation
    /// traps on EINTR in pipe reads). `environment` nil keeps the test's own.
    public static func run(_ executable: URL, _ args: [String], environment: [String: String]? = nil, stdin: String? = nil) throws -> ProcessRun {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("stdout"), errURL = dir.appendingPathComponent("stderr"), inURL = dir.appendingPathComponent("stdin")
        try Data((stdin ?? "").utf8).write(to: inURL)
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let p = Process()
        p.executableURL = executable
        p.arguments = args
        if let environment { p.environment = environment }
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL), input = try FileHandle(forReadingFrom: inURL)
        defer { try? out.close(); try? err.close(); try? input.close() }
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input
        try p.run()
        p.waitUntilExit()
        return ProcessRun(status: p.terminationStatus, stdout: try String(contentsOf: outURL, encoding: .utf8),
                          stderr: try String(contentsOf: errURL, encoding: .utf8))
    }
}

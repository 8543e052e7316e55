import Foundation

/// A throwaway Python virtual environment with packages from PyPI, for tests that check Waybill against a
/// reference implementation (the OpenTelemetry SDK, schemathesis, pm4py, chDB, promtool's peers ...).
/// `make` returns nil, after printing `SKIPPED <test>: <reason>`, where no venv can be made or PyPI is
/// unreachable, so the calling test returns early and says why.
public struct PythonVenv: Sendable {
    public let path: String
    public var python: String { path + "/bin/python" }
    public func bin(_ name: String) -> String { path + "/bin/" + name }

    /// One venv per `name` under the temporary directory, reused across tests of one run; `packages` are
    /// pip requirement strings (`"pm4py"`, `"schemathesis>=3"`).
    public static func make(_ name: String, packages: [String], test: String) -> PythonVenv? {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-venv-\(name)").path
        if !FileManager.default.fileExists(atPath: dir + "/bin/python") {
            let (rc, log) = run(["python3", "-m", "venv", dir])
            guard rc == 0 else { print("SKIPPED \(test): cannot create a venv: \(log.suffix(300))"); return nil }
        }
        let (pip, pipLog) = run([dir + "/bin/pip", "install", "-q", "--disable-pip-version-check"] + packages)
        guard pip == 0 else {
            print("SKIPPED \(test): PyPI unreachable or install of \(packages.joined(separator: " ")) failed: \(pipLog.suffix(300))")
            return nil
        }
        return PythonVenv(path: dir)
    }

    /// `make` awaited off the cooperative pool (`offThePool`): creating a venv and a pip install take a while.
    public static func make(_ name: String, packages: [String], test: String) async -> PythonVenv? {
        (try? await offThePool { make(name, packages: packages, test: test) }) ?? nil
    }

    /// `run` awaited off the cooperative pool (`offThePool`), for commands that run for seconds or minutes.
    public static func run(_ args: [String], environment: [String: String]? = nil) async -> (Int32, String) {
        (try? await offThePool { run(args, environment: environment) }) ?? (-1, "cannot start a thread")
    }

    /// `script` awaited off the cooperative pool (`offThePool`).
    public func script(_ text: String, _ args: [String] = [], environment: [String: String]? = nil) async throws -> (Int32, String) {
        let venv = self
        return try await offThePool { try venv.script(text, args, environment: environment) }
    }

    /// Runs a command (looked up on the PATH unless absolute) and returns its exit status and its stdout
    /// and stderr together.
    public static func run(_ args: [String], environment: [String: String]? = nil) -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let outURL = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-run-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outURL) }
        guard let out = try? FileHandle(forWritingTo: outURL) else { return (-1, "cannot write \(outURL.path)") }
        p.standardOutput = out
        p.standardError = out
        do { try p.run() } catch { return (-1, "\(error)") }
        p.waitUntilExit()
        try? out.close()
        return (p.terminationStatus, (try? String(contentsOf: outURL, encoding: .utf8)) ?? "")
    }

    /// Runs a Python script text in this venv with arguments.
    public func script(_ text: String, _ args: [String] = [], environment: [String: String]? = nil) throws -> (Int32, String) {
        let file = path + "/script-\(UUID().uuidString).py"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        return Self.run([python, file] + args, environment: environment)
    }
}

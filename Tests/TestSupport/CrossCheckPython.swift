import Foundation
import TensorCore
import XCTest

/// The venv Python for cross-checks: $ONESTEP_PYTHON, else `.venv/bin/python` at the package root.
/// Fails the test (never skips) when neither exists: `make test` always provides it.
public enum CrossCheckPython {
    public static func executable(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        if let p = ProcessInfo.processInfo.environment["ONESTEP_PYTHON"], !p.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: p) else {
                XCTFail("ONESTEP_PYTHON=\(p) is not executable", file: file, line: line)
                throw TensorCoreError(.io, "no python")
            }
            return p
        }
        let p = packageRoot + "/.venv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: p) else {
            XCTFail(
                "no Python for cross-checks: set ONESTEP_PYTHON or run `make venv` (looked for \(p))",
                file: file, line: line)
            throw TensorCoreError(.io, "no python")
        }
        return p
    }

    /// Runs `script` with `args`; returns stdout; fails the test on a non-zero exit, showing stderr.
    @discardableResult
    public static func run(_ script: String, _ args: [String], file: StaticString = #filePath, line: UInt = #line)
        throws -> String
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executable(file: file, line: line))
        process.arguments = ["-c", script] + args
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stdout = String(decoding: outData, as: UTF8.self)
        let stderr = String(decoding: errData, as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, "python failed:\n\(stdout)\n\(stderr)", file: file, line: line)
        return stdout
    }
}

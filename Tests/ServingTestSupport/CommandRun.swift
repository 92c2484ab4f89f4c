import Foundation
import TestSupport
import XCTest

/// Runs a command to completion (output and errors together) from `directory` (default: the
/// package root, so relative paths such as models/... resolve); returns its exit status and output.
public func runCommand(_ bin: String, _ args: [String], in directory: String? = nil) throws -> (
    status: Int32, output: String
) {
    try runProcess(bin, args, in: directory)
}

/// A Python for the serving clients' tests: ONESTEP_SERVE_PYTHON, else ONESTEP_PYTHON, else
/// `.venv/bin/python`, the first that can run `probe` (an import line); skips the test when none can.
public func servePython(probe: String) throws -> String {
    let env = ProcessInfo.processInfo.environment
    let candidates: [String?] = [env["ONESTEP_SERVE_PYTHON"], env["ONESTEP_PYTHON"], packageRoot + "/.venv/bin/python"]
    for case let p? in candidates where FileManager.default.isExecutableFile(atPath: p) {
        if try runCommand(p, ["-c", probe]).status == 0 { return p }
    }
    throw XCTSkip("no Python that can run '\(probe)' (set ONESTEP_SERVE_PYTHON)")
}

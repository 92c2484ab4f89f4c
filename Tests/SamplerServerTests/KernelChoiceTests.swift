import Foundation
import ServingTestSupport
import TestSupport
import XCTest

/// `onestep` chooses OpenBLAS's kernel family at start: an explicit setting wins, a single candidate
/// is kept without measuring, several are timed in child processes and the result is remembered;
/// a remembered winner other than the loaded family re-executes the process with it.
final class KernelChoiceTests: XCTestCase {
    func gemmLine(_ env: [String: String]) throws -> String {
        let (bin, _) = try DaemonProcess.binary()
        // An OPENBLAS_CORETYPE of the test's environment is blanked unless the case sets one.
        let r = try runProcess(bin, ["kernels"], environment: ["OPENBLAS_CORETYPE": ""].merging(env) { $1 })
        XCTAssertEqual(r.status, 0, r.output)
        return r.output.split(separator: "\n").first { $0.hasPrefix("GEMM: ") }.map(String.init)
            ?? "(no GEMM line in \(r.output))"
    }

    func testChoiceIsMeasuredRememberedAppliedAndOverridable() throws {
        let cache = NSTemporaryDirectory() + "blas-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let own = try gemmLine(["ONESTEP_BLAS_CANDIDATES": "", "ONESTEP_CACHE_DIR": cache])
        XCTAssertTrue(own.contains("the only candidate"), own)
        let loaded = String(own.dropFirst("GEMM: OpenBLAS ".count).prefix { $0 != " " })
        let other = loaded == "Haswell" ? "Sandybridge" : "Haswell"

        // Two candidates: both measured in children, the result written to the cache.
        let env = ["ONESTEP_BLAS_CANDIDATES": other, "ONESTEP_CACHE_DIR": cache]
        let measured = try gemmLine(env)
        XCTAssertTrue(measured.contains("measured, 1-thread sgemm GFLOP/s: \(loaded) "), measured)
        XCTAssertTrue(measured.contains(", \(other) "), measured)
        XCTAssertFalse(measured.contains("failed"), measured)
        let file = cache + "/blas-kernels.json"
        var table = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: [String: Any]]
        )
        XCTAssertEqual(table.count, 1)
        let key = table.keys.first!
        let speeds = try XCTUnwrap(table[key]?["gflops"] as? [String: Double])
        XCTAssertEqual(Set(speeds.keys), [loaded, other])
        XCTAssertTrue(speeds.values.allSatisfy { $0 > 0.1 && $0 < 10_000 }, "\(speeds)")

        // Remembered: not measured again.
        XCTAssertTrue(try gemmLine(env).contains("cached"), "second run")

        // A remembered winner other than the loaded family: the process re-executes with it.
        table[key]?["core"] = other
        try JSONSerialization.data(withJSONObject: table).write(to: URL(fileURLWithPath: file))
        let switched = try gemmLine(env)
        XCTAssertTrue(
            switched.hasPrefix("GEMM: OpenBLAS \(other) (chosen by onestep over OpenBLAS's \(loaded), cached"), switched
        )

        // Explicit settings win and measure nothing.
        XCTAssertEqual(
            try gemmLine(env.merging(["OPENBLAS_CORETYPE": other]) { $1 }),
            "GEMM: OpenBLAS \(other) (OPENBLAS_CORETYPE from the environment)")
        XCTAssertEqual(
            try gemmLine(env.merging(["ONESTEP_BLAS_CORE": "own"]) { $1 }),
            "GEMM: OpenBLAS \(loaded) (OpenBLAS's own choice, kept by ONESTEP_BLAS_CORE=own)")
        // A family OpenBLAS does not know is reported as failed, never chosen.
        let bogus = try gemmLine(["ONESTEP_BLAS_CANDIDATES": "NoSuchCore", "ONESTEP_CACHE_DIR": cache])
        XCTAssertTrue(bogus.contains("NoSuchCore failed") && bogus.hasPrefix("GEMM: OpenBLAS \(loaded) "), bogus)
    }

    /// OpenMP (oneDNN's team) waits as libgomp does by default (spin 300,000 times, then sleep)
    /// unless the environment says how, and the summary says which; libgomp itself
    /// (OMP_DISPLAY_ENV) reports the spin count in force.
    func testOpenMPWaitFollowsTheEnvironmentElseLibgompsDefault() throws {
        let env = ProcessInfo.processInfo.environment
        if env["OMP_WAIT_POLICY"] != nil || env["GOMP_SPINCOUNT"] != nil {
            throw XCTSkip("the test environment sets OpenMP's wait policy itself")
        }
        let (bin, _) = try DaemonProcess.binary()
        func run(_ extra: [String: String]) throws -> (summary: String, libgomp: String) {
            let r = try runProcess(bin, ["kernels"], environment: ["OMP_DISPLAY_ENV": "VERBOSE"].merging(extra) { $1 })
            XCTAssertEqual(r.status, 0, r.output)
            let lines = r.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            // libgomp prints its settings when it loads, so a re-executed process prints them twice: the last is in force.
            return (
                lines.first { $0.hasPrefix("OpenMP: ") } ?? "(no OpenMP line in \(r.output))",
                lines.last { $0.hasPrefix("GOMP_SPINCOUNT = ") } ?? "(libgomp printed no GOMP_SPINCOUNT in \(r.output))"
            )
        }
        let chosen = try run([:])
        XCTAssertEqual(chosen.summary, "OpenMP: OpenMP threads spin briefly, then sleep (libgomp's default)")
        XCTAssertEqual(chosen.libgomp, "GOMP_SPINCOUNT = '300000'")
        let told = try run(["OMP_WAIT_POLICY": "passive"])
        XCTAssertEqual(told.summary, "OpenMP: OMP_WAIT_POLICY=passive from the environment")
        XCTAssertEqual(told.libgomp, "GOMP_SPINCOUNT = '0'")
        let spin = try run(["GOMP_SPINCOUNT": "1000"])
        XCTAssertEqual(spin.summary, "OpenMP: GOMP_SPINCOUNT=1000 from the environment")
        XCTAssertEqual(spin.libgomp, "GOMP_SPINCOUNT = '1000'")
    }
}

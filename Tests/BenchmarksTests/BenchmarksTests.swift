import Foundation
import NN
import TensorCore
import XCTest

@testable import Benchmarks

/// The bench's pieces compute their rows from what they timed, keep weights deterministic and
/// restored, and export what the peers reload. (Speed itself is printed, never asserted.)
final class BenchmarksTests: XCTestCase {
    func tinyMLP(seed: UInt64 = 3) throws -> MLPDenoiser {
        let net = try MLPDenoiser(MLPConfig(dim: 2, width: 16, blocks: 1, noiseChannels: 8), seed: seed)
        BenchWeights.randomise(net.parameters, seed: seed)
        return net
    }

    func tinyUNet() throws -> UNet {
        var cfg = UNetConfig()
        cfg.resolution = 8
        cfg.channels = [8, 8]
        cfg.blocksPerLevel = 1
        cfg.noiseChannels = 8
        cfg.embChannels = 16
        let net = try UNet(cfg, seed: 1)
        BenchWeights.randomise(net.parameters, seed: 1)
        return net
    }

    func testFormatThousands() {
        XCTAssertEqual(formatThousands(0), "0")
        XCTAssertEqual(formatThousands(999.4), "999")
        XCTAssertEqual(formatThousands(999.6), "1,000")
        XCTAssertEqual(formatThousands(1_234_567), "1,234,567")
        XCTAssertEqual(formatThousands(-1234), "-1,234")
    }

    /// Waits (up to 3 s) until the process's other threads stop using CPU: OpenBLAS's and OpenMP's
    /// workers left by earlier tests spin for a while before they sleep, and the CPU column counts every
    /// thread of the process.
    func waitForQuietProcess() {
        for _ in 0..<150 {
            let c0 = BenchClock.cpu(), t0 = BenchClock.wall()
            usleep(20_000)
            if (BenchClock.cpu() - c0) < 0.1 * (BenchClock.wall() - t0) { return }
        }
    }

    func testTimerRunsWarmupThenAtLeastRepeatsAndReportsMedians() {
        waitForQuietProcess()
        var calls = 0
        let t = BenchTimer.measure(repeats: 5, warmup: 2, minSeconds: 0) {
            calls += 1
            usleep(2_000)
        }
        XCTAssertEqual(t.runs, 5)
        XCTAssertEqual(calls, 7, "2 warm-up runs and 5 timed")
        XCTAssertGreaterThanOrEqual(t.bestMs, 2)
        XCTAssertGreaterThanOrEqual(t.medianMs, t.bestMs)
        // Sleeping costs (almost) no CPU time: the CPU column tells waiting from working.
        XCTAssertLessThan(t.cpuMedianMs, t.medianMs / 2)
        // Fast bodies are repeated until about minSeconds are measured, at most 1000 times.
        var fast = 0
        let f = BenchTimer.measure(repeats: 3, warmup: 1, minSeconds: 10) { fast += 1 }
        XCTAssertEqual(f.runs, 1000)
        XCTAssertEqual(fast, 1001)
        XCTAssertEqual(BenchTimer.median([3, 1, 2]), 2)
        XCTAssertEqual(BenchTimer.median([4, 1, 2, 3]), 2.5)
    }

    func testRowsAreComputedFromTheTiming() {
        let timing = Timing(bestMs: 4, medianMs: 5, cpuMedianMs: 9, runs: 10)
        let row = BenchRow(
            engine: "swift", network: "unet", batch: "64", threads: 2, timing: timing, flop: 1e9, samples: 64)
        XCTAssertEqual(row.samplesPerSecond!, 64 * 1000 / 5, accuracy: 1e-9)
        XCTAssertEqual(row.gflops, 200, accuracy: 1e-9, "1 GFLOP in 5 ms")
        XCTAssertEqual(row.cpuMs, 9)
        let table = BenchRow.table([row]).split(separator: "\n")
        XCTAssertEqual(table.count, 3)
        XCTAssertEqual(table[2], "| swift | unet | 64 | 2 | 4.000 | 5.000 | 12,800 | 200.00 |")
        XCTAssertEqual(
            BenchRow.cpuTable([row]).split(separator: "\n")[2], "| swift | unet | 64 | 2 | 5.000 | 9.000 | 1.80 |")
        let sgemm = BenchRow(
            engine: "sgemm", network: "x", batch: "-", threads: 1, timing: timing, flop: 1e6, samples: nil)
        XCTAssertNil(sgemm.samplesPerSecond)
        XCTAssertTrue(BenchRow.table([sgemm]).hasSuffix("| 5.000 | - | 0.20 |"))
    }

    func testSgemmRowsCountTwiceMNKFlop() {
        let shape = BenchSgemm.Shape("small", 8, 16, 4)
        XCTAssertEqual(shape.flop, 1024)
        let rows = BenchSgemm.rows([shape], threads: 1, repeats: 2, minSeconds: 0)
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual(rows[0].gflops, 1024 / rows[0].medianMs / 1e6, accuracy: 1e-12)
        XCTAssertEqual(rows[0].network, "small")
        XCTAssertFalse(BenchSgemm.shapes(quick: true).contains { $0.label == "1024^3" })
        XCTAssertTrue(BenchSgemm.shapes(quick: false).contains { $0.label == "1024^3" })
    }

    func testRandomWeightsAreDeterministicAndInTheirBounds() throws {
        let a = try tinyMLP(seed: 5), b = try tinyMLP(seed: 5), c = try tinyMLP(seed: 6)
        XCTAssertEqual(a.parameters.values.array, b.parameters.values.array)
        XCTAssertNotEqual(a.parameters.values.array, c.parameters.values.array)
        for e in a.parameters.entries {
            let v = UnsafeBufferPointer(start: a.parameters.value(e.offset), count: e.count)
            if e.name.contains("norm") {
                let centre: Float = e.name.hasSuffix(".bias") ? 0 : 1
                XCTAssertTrue(v.allSatisfy { abs($0 - centre) <= 0.3 }, e.name)
            } else if e.name.hasSuffix(".weight") {
                XCTAssertTrue(v.allSatisfy { abs($0) <= 1 / Float(e.fanIn).squareRoot() }, e.name)
            }
        }
    }

    func testNetworkRowsAndTrainingStepRestoresTheWeights() throws {
        let net = try tinyMLP()
        let before = net.parameters.values.array
        let fwd = BenchNet.forward(net, name: "mlp", batch: 8, threads: 1, repeats: 2, seed: 1, minSeconds: 0)
        XCTAssertEqual(fwd.batch, "8")
        XCTAssertEqual(fwd.samplesPerSecond!, 8 * 1000 / fwd.medianMs, accuracy: 1e-6)
        XCTAssertEqual(fwd.gflops, Double(net.flopsPerSample) * 8 / fwd.medianMs / 1e6, accuracy: 1e-9)
        let step = BenchNet.trainStep(net, name: "mlp", batch: 8, threads: 1, repeats: 3, seed: 1, minSeconds: 0)
        XCTAssertTrue(step.finite)
        XCTAssertEqual(step.row.engine, "swift train")
        XCTAssertEqual(net.parameters.values.array, before, "Adam steps are undone bitwise")
        for frozen in [false, true] {
            let row = BenchNet.inputGradient(
                net, name: "mlp", batch: 8, threads: 1, repeats: 2, seed: 1, frozen: frozen, minSeconds: 0)
            XCTAssertEqual(
                row.gflops * row.medianMs * 1e6, (frozen ? 2 : 3) * Double(net.flopsPerSample) * 8, accuracy: 1)
        }
        XCTAssertEqual(net.parameters.values.array, before)
        XCTAssertTrue(net.parameters.grads.array.allSatisfy { $0 == 0 }, "gradients are left zeroed")
        // Splitting work over threads never reorders a sum: the same output at 2 threads.
        for (t, d) in BenchNet.threadSpread(try tinyUNet(), threads: [1, 2], seed: 1) {
            XCTAssertEqual(t, 2)
            XCTAssertLessThan(d, 1e-4, "outputs moved with the thread count")
        }
    }

    func testExportReloadsToTheSameOutputs() throws {
        let dir = NSTemporaryDirectory() + "bench-export-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let unet = try tinyUNet(), mlp = try tinyMLP()
        try BenchWeights.export([("unet", unet), ("mlp", mlp)], to: dir, seed: 7)
        let io = try SafetensorsFile.read(path: "\(dir)/io.safetensors")
        for name in ["unet", "mlp"] {
            let (net, _) = try NetworkCheckpoint.load(path: "\(dir)/\(name).safetensors")
            let x = try io.tensor("\(name).x"), c = try io.tensor("\(name).c_noise"), y = try io.tensor("\(name).y")
            XCTAssertEqual(x.shape, [4] + net.sampleShape)
            XCTAssertEqual(net.forward(x: x.storage, cNoise: c.storage), y.storage, name)
        }
        // A folder that cannot be made is a BenchError naming it.
        XCTAssertThrowsError(try BenchWeights.export([("mlp", mlp)], to: "/proc/no-such/bench", seed: 7)) {
            XCTAssertTrue("\($0)".contains("/proc/no-such/bench"), "\($0)")
        }
    }

    func testConvolutionTableHasOneLinePerShapeAndATotal() throws {
        var lines: [String] = []
        try BenchConv.run(
            batches: [2], threads: [1], repeats: 1, shapes: [(4, 8, 6, 3, 1), (8, 8, 6, 3, 2)], minSeconds: 0
        ) { lines.append($0) }
        XCTAssertEqual(lines.filter { $0.hasPrefix("| 4->8 6x6 k3 | 2 | 1 |") }.count, 1)
        XCTAssertEqual(lines.filter { $0.hasPrefix("| 8->8 6x6 k3 s2 | 2 | 1 |") }.count, 1)
        XCTAssertEqual(lines.filter { $0.hasPrefix("all shapes once, batch 2, 1 thread:") }.count, 1)
    }

    func testRecordIsWrittenWithTheMachine() throws {
        let path = NSTemporaryDirectory() + "bench-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let row = BenchRow(
            engine: "sgemm", network: "x", batch: "-", threads: 1,
            timing: Timing(bestMs: 1, medianMs: 2, cpuMedianMs: 2, runs: 3), flop: 1e6, samples: nil)
        try BenchRecord(rows: [row]).write(to: path)
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        XCTAssertEqual(obj["cpu"] as? String, BenchMachine.cpuModel)
        XCTAssertNotNil(obj["load_average_after"])
        let rows = obj["rows"] as! [[String: Any]]
        XCTAssertEqual(rows.first?["median_ms"] as? Double, 2)
        XCTAssertThrowsError(try BenchRecord(rows: []).write(to: "/proc/no-such/x.json"))
    }
}

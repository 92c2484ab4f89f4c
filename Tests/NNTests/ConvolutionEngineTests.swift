import Foundation
import OneDNN
import TensorCore
import TestSupport
import XCTest

@testable import NN

/// The two convolution engines against each other, oneDNN's bitwise invariances on the served
/// network's shapes, and oneDNN at its lowest ISA.
final class ConvolutionEngineTests: XCTestCase {
    func forward(_ net: any Denoiser, _ engine: ConvolutionEngine, x: [Float], c: [Float], labels: [Int32]?) -> [Float]
    {
        let was = ConvolutionEngine.current
        defer { ConvolutionEngine.current = was }
        ConvolutionEngine.current = engine
        return net.forward(x: x, cNoise: c, labels: labels)
    }

    /// oneDNN and im2col + sgemm compute the same networks (to float rounding), forward and backward.
    func testEnginesAgreeOnWholeNetworks() throws {
        var small = UNetConfig()
        small.resolution = 16
        small.channels = [8, 16, 16]
        small.blocksPerLevel = 2
        small.noiseChannels = 8
        small.embChannels = 16
        small.numClasses = 3
        for config in [UNetConfig(), small] {
            let net = try UNet(config)
            randomizeParameters(net.parameters, seed: 3, scale: 0.2)
            let B = 5
            let x = randomArray(B * net.sampleSize, seed: 4), c = randomArray(B, seed: 5)
            let labels: [Int32]? = config.numClasses > 0 ? (0..<B).map { Int32($0 % 3) } : nil
            let a = forward(net, .oneDNN, x: x, c: c, labels: labels)
            let b = forward(net, .im2col, x: x, c: c, labels: labels)
            let scale = b.map { abs($0) }.max() ?? 1
            let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-5 * max(1, scale), "forward \(config.channels): max difference \(worst)")
            XCTAssertGreaterThan(scale, 0)
            var grads: [[Float]] = []
            for engine in ConvolutionEngine.allCases {
                ConvolutionEngine.current = engine
                net.parameters.zeroGrad()
                _ = net.forward(x: x, cNoise: c, labels: labels)
                let dx = net.backward(dOut: randomArray(x.count, seed: 9))
                grads.append(
                    dx + Array(UnsafeBufferPointer(start: net.parameters.grads.ptr, count: net.parameters.count)))
            }
            ConvolutionEngine.current = .oneDNN
            let gs = grads[1].map { abs($0) }.max() ?? 1
            let gw = zip(grads[0], grads[1]).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(gw, 1e-4 * max(1, gs), "backward \(config.channels): max difference \(gw) of \(gs)")
        }
    }

    /// On oneDNN a sample's output is bitwise the same at 1 and 2 threads (the default U-Net:
    /// every convolution shape the bundled models use), with no per-sample path.
    func testThreadCountInvarianceOfTheServedShapes() throws {
        let net = try UNet(UNetConfig())
        randomizeParameters(net.parameters, seed: 5, scale: 0.2)
        let B = 6
        let x = randomArray(B * net.sampleSize, seed: 6), c = randomArray(B, seed: 7)
        setComputeThreads(1)
        let one = forward(net, .oneDNN, x: x, c: c, labels: nil)
        setComputeThreads(2)
        let two = forward(net, .oneDNN, x: x, c: c, labels: nil)
        setComputeThreads(1)
        XCTAssertEqual(one.map(\.bitPattern), two.map(\.bitPattern), "1 vs 2 threads")
        print(ConvolutionEngine.summary)
    }

    /// The fixtures, gradient checks and batch invariance pass with oneDNN held to SSE4.1 and the C
    /// elementwise kernels on their baseline twin (a machine without AVX): a child test process,
    /// since the ISA is fixed at oneDNN's first call.
    func testLowestISAPassesTheFixtures() throws {
        if ProcessInfo.processInfo.environment["ONEDNN_MAX_CPU_ISA"] != nil { throw XCTSkip("already restricted") }
        let (status, out) = try runProcess(
            CommandLine.arguments[0],
            [
                "NNTests.FixtureTests", "NNTests.BatchInvarianceTests",
                "NNTests.ConvolutionEngineTests/testThreadCountInvarianceOfTheServedShapes",
            ], environment: ["ONEDNN_MAX_CPU_ISA": "SSE41", "ONESTEP_SIMD": "generic"])
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("isa sse41"), out)
        XCTAssertTrue(out.contains("elementwise kernels generic (ONESTEP_SIMD)"), out)
        XCTAssertTrue(out.contains(" with 0 failures"), out)
    }
}

extension ConvolutionEngineTests {
    /// Frozen weights (a served network) run from oneDNN's packed layout: bitwise the same output.
    func testFrozenWeightsGiveTheSameOutput() throws {
        let net = try UNet(UNetConfig())
        randomizeParameters(net.parameters, seed: 8, scale: 0.2)
        let x = randomArray(3 * net.sampleSize, seed: 9), c = randomArray(3, seed: 10)
        let plain = forward(net, .oneDNN, x: x, c: c, labels: nil)
        net.parameters.weightsFrozen = true
        let packed = forward(net, .oneDNN, x: x, c: c, labels: nil)
        let again = forward(net, .oneDNN, x: x, c: c, labels: nil)
        XCTAssertEqual(plain.map(\.bitPattern), packed.map(\.bitPattern))
        XCTAssertEqual(plain.map(\.bitPattern), again.map(\.bitPattern))
        // Unfrozen again, a weight change is seen at once.
        net.parameters.weightsFrozen = false
        net.parameters.values.ptr[0] += 1
        XCTAssertNotEqual(forward(net, .oneDNN, x: x, c: c, labels: nil).map(\.bitPattern), plain.map(\.bitPattern))
    }
}

import TensorCore
import XCTest

@testable import NN

/// With `batchInvariant`, a sample's output is bitwise the same whatever else shares its batch and
/// wherever it sits in it (what the server's determinism guarantee rests on).
final class BatchInvarianceTests: XCTestCase {
    func outputs(_ net: any Denoiser, inputs x: [Float], c: [Float], labels: [Int32]?, order: [Int]) -> [[Float]] {
        let n = net.sampleSize
        let xs = order.flatMap { Array(x[($0 * n)..<(($0 + 1) * n)]) }
        let y = net.forward(x: xs, cNoise: order.map { c[$0] }, labels: labels.map { l in order.map { l[$0] } })
        var result = [[Float]](repeating: [], count: c.count)
        for (slot, i) in order.enumerated() { result[i] = Array(y[(slot * n)..<((slot + 1) * n)]) }
        return result
    }

    func check(_ net: any Denoiser, count: Int, file: StaticString = #filePath, line: UInt = #line) {
        randomizeParameters(net.parameters, seed: 5, scale: 0.2)
        net.parameters.batchInvariant = true
        let x = randomArray(count * net.sampleSize, seed: 6)
        let c = randomArray(count, seed: 7)
        let labels: [Int32]? = net.numClasses > 0 ? (0..<count).map { Int32($0 % net.numClasses) } : nil
        var oneThread: [[Float]] = []
        for threads in [1, 2] {
            setComputeThreads(threads)
            let whole = outputs(net, inputs: x, c: c, labels: labels, order: Array(0..<count))
            // oneDNN's NHWC network is also bitwise the same on any number of threads.
            if threads == 1 {
                oneThread = whole
            } else if (net as? UNet)?.layout == .nhwc && ConvolutionEngine.current == .oneDNN {
                XCTAssertEqual(
                    whole.flatMap { $0.map(\.bitPattern) }, oneThread.flatMap { $0.map(\.bitPattern) },
                    "2 threads vs 1",
                    file: file, line: line)
            }
            let reversed = outputs(net, inputs: x, c: c, labels: labels, order: Array((0..<count).reversed()))
            for i in [0, count / 2, count - 1] {
                let alone = outputs(net, inputs: x, c: c, labels: labels, order: [i])[i]
                XCTAssertEqual(
                    alone.map(\.bitPattern), whole[i].map(\.bitPattern),
                    "sample \(i) alone vs batch (\(threads) threads)", file: file, line: line)
                XCTAssertEqual(
                    reversed[i].map(\.bitPattern), whole[i].map(\.bitPattern), "sample \(i) moved (\(threads) threads)",
                    file: file, line: line)
            }
        }
        setComputeThreads(1)
    }

    func testUNet() throws {
        try forEachConvolutionEngine { _ in
            check(try UNet(tinyUNetConfig(numClasses: 10)), count: 19)
        }
    }

    func testDefaultUNetShapes() throws {
        try forEachConvolutionEngine { _ in
            check(try UNet(UNetConfig()), count: 9)
        }
    }

    func testMLP() throws {
        check(try MLPDenoiser(MLPConfig(dim: 2, width: 64, blocks: 3)), count: 37)
        check(try MLPDenoiser(MLPConfig(dim: 64, width: 128, blocks: 2, numClasses: 10)), count: 23)
    }

    /// Without the mode, whole-batch products are not bitwise batch-invariant with this OpenBLAS
    /// (which is why the mode exists); this documents it rather than asserting it, since a BLAS
    /// could happen to be invariant.
    func testPlainModeIsCloseButMayDiffer() throws {
        let net = try MLPDenoiser(MLPConfig(dim: 2, width: 64, blocks: 3))
        randomizeParameters(net.parameters, seed: 5, scale: 0.2)
        let x = randomArray(2 * 37, seed: 6), c = randomArray(37, seed: 7)
        let whole = outputs(net, inputs: x, c: c, labels: nil, order: Array(0..<37))
        let alone = outputs(net, inputs: x, c: c, labels: nil, order: [5])[5]
        for j in 0..<2 { XCTAssertEqual(alone[j], whole[5][j], accuracy: 1e-4 * max(1, abs(whole[5][j]))) }
    }
}

import OneDNN
import TensorCore
import XCTest

@testable import NN

/// The U-Net with Winograd 3x3 convolutions (the default where oneDNN offers them) against the
/// same network with direct ones: forward, input and parameter gradients, served (batch-invariant)
/// and plain modes, and frozen weights across batch sizes.
final class WinogradTests: XCTestCase {
    private var saved = (ConvolutionAlgorithm.current, ConvolutionEngine.current)

    override func setUp() {
        saved = (ConvolutionAlgorithm.current, ConvolutionEngine.current)
        ConvolutionEngine.current = .oneDNN
    }

    override func tearDown() {
        (ConvolutionAlgorithm.current, ConvolutionEngine.current) = saved
        setComputeThreads(1)
    }

    /// Skips where oneDNN has no f32 Winograd (it has it on AVX-512 only): the layers run direct there.
    func requireWinograd() throws {
        let key = DNNLConvolutionKey(
            batch: 1, inChannels: 32, outChannels: 32, height: 28, width: 28, kernel: 3, padding: 1,
            training: true, algorithm: .winograd)
        guard let conv = try? DNNLConvolutionCache.shared.convolution(key) else {
            throw XCTSkip("oneDNN offers no Winograd on this CPU (isa \(OneDNNEngine.effectiveISA))")
        }
        print("winograd at batch 1: \(conv.forwardImplementation), \(conv.layoutSummary)")
    }

    func run(
        _ net: UNet, _ algorithm: ConvolutionAlgorithm, x: [Float], c: [Float], labels: [Int32]?, dOut: [Float]
    ) -> (y: [Float], grads: [Float]) {
        ConvolutionAlgorithm.current = algorithm
        net.parameters.zeroGrad()
        let y = net.forward(x: x, cNoise: c, labels: labels)
        let dx = net.backward(dOut: dOut)
        return (y, dx + Array(UnsafeBufferPointer(start: net.parameters.grads.ptr, count: net.parameters.count)))
    }

    private func maxAbs(_ a: [Float]) -> Float { a.map { abs($0) }.max() ?? 0 }

    /// Forward within 2e-5 of the output's scale, gradients within 2e-4 of theirs, on the served
    /// U-Net's shapes and a conditional one; and not bitwise equal (else the test saw no Winograd).
    func testWinogradAgreesWithDirect() throws {
        try requireWinograd()
        var cond = UNetConfig()
        cond.numClasses = 10
        for config in [UNetConfig(), cond] {
            let net = try UNet(config)
            randomizeParameters(net.parameters, seed: 21, scale: 0.2)
            let B = 4
            let x = randomArray(B * net.sampleSize, seed: 22), c = randomArray(B, seed: 23)
            let labels: [Int32]? = config.numClasses > 0 ? [3, 0, 9, 5] : nil
            let dOut = randomArray(x.count, seed: 24)
            let direct = run(net, .direct, x: x, c: c, labels: labels, dOut: dOut)
            let wino = run(net, .winograd, x: x, c: c, labels: labels, dOut: dOut)
            let fy = zip(direct.y, wino.y).map { abs($0 - $1) }.max()!
            let fg = zip(direct.grads, wino.grads).map { abs($0 - $1) }.max()!
            print(
                "winograd vs direct, classes \(config.numClasses): forward \(fy) of \(maxAbs(direct.y)), gradients \(fg) of \(maxAbs(direct.grads))"
            )
            XCTAssertGreaterThan(maxAbs(direct.y), 0.1)
            XCTAssertLessThan(fy, 2e-5 * maxAbs(direct.y), "forward")
            XCTAssertLessThan(fg, 2e-4 * maxAbs(direct.grads), "gradients")
            XCTAssertNotEqual(direct.y.map(\.bitPattern), wino.y.map(\.bitPattern), "Winograd was not used")
        }
    }

    /// The served mode runs Winograd one sample at a time: each sample bitwise the same as alone, in
    /// any batch, at 1 and 2 threads, and close to the plain (batched) Winograd network.
    func testServedModeIsPerSampleAndInvariant() throws {
        try requireWinograd()
        ConvolutionAlgorithm.current = .winograd
        let net = try UNet(UNetConfig())
        randomizeParameters(net.parameters, seed: 31, scale: 0.2)
        let B = 7, n = net.sampleSize
        let x = randomArray(B * n, seed: 32), c = randomArray(B, seed: 33)
        let plain = net.forward(x: x, cNoise: c, labels: nil)
        net.parameters.batchInvariant = true
        net.parameters.weightsFrozen = true
        var reference: [Float] = []
        for threads in [1, 2] {
            setComputeThreads(threads)
            let whole = net.forward(x: x, cNoise: c, labels: nil)
            if threads == 1 { reference = whole }
            XCTAssertEqual(whole.map(\.bitPattern), reference.map(\.bitPattern), "\(threads) threads vs 1")
            for i in [0, 3, 6] {
                let alone = net.forward(x: Array(x[(i * n)..<((i + 1) * n)]), cNoise: [c[i]], labels: nil)
                XCTAssertEqual(alone.map(\.bitPattern), whole[(i * n)..<((i + 1) * n)].map(\.bitPattern), "sample \(i)")
            }
        }
        let worst = zip(plain, reference).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 2e-5 * maxAbs(plain), "served vs plain Winograd")
        // Unfrozen, a weight change is seen at once; frozen again, the new weights are packed.
        net.parameters.weightsFrozen = false
        for i in 0..<net.parameters.count { net.parameters.values.ptr[i] *= 0.9 }
        let changed = net.forward(x: x, cNoise: c, labels: nil)
        XCTAssertNotEqual(changed.map(\.bitPattern), reference.map(\.bitPattern))
        net.parameters.weightsFrozen = true
        XCTAssertEqual(net.forward(x: x, cNoise: c, labels: nil).map(\.bitPattern), changed.map(\.bitPattern))
    }

    /// Served ResBlocks keep Winograd's blocked layout (`aBcd16b`) between their norms and
    /// convolutions: bitwise the same outputs as reordering around each convolution, at 1 and 2
    /// threads and several batch sizes, unconditional and conditional; and the blocked path ran.
    func testServedBlockedResBlocksGiveTheSameBits() throws {
        try requireWinograd()
        ConvolutionAlgorithm.current = .winograd
        let saved = WinogradBlocking.current
        defer { WinogradBlocking.current = saved }
        var cond = UNetConfig()
        cond.numClasses = 10
        for config in [UNetConfig(), cond] {
            let net = try UNet(config)
            randomizeParameters(net.parameters, seed: 51, scale: 0.2)
            net.parameters.batchInvariant = true
            net.parameters.weightsFrozen = true
            let n = net.sampleSize
            for (threads, B) in [(1, 1), (1, 5), (2, 1), (2, 6)] {
                setComputeThreads(threads)
                let x = randomArray(B * n, seed: 52), c = randomArray(B, seed: 53)
                let labels: [Int32]? = config.numClasses > 0 ? (0..<B).map { Int32($0 % 10) } : nil
                WinogradBlocking.current = .off
                let reordered = net.forward(x: x, cNoise: c, labels: labels)
                XCTAssertFalse(net.enc[0][0].ranBlocked16)
                WinogradBlocking.current = .on
                let blocked = net.forward(x: x, cNoise: c, labels: labels)
                let ran = net.blocks.filter(\.ranBlocked16).count
                XCTAssertGreaterThan(ran, 0, "no ResBlock kept the blocked layout")
                XCTAssertEqual(
                    blocked.map(\.bitPattern), reordered.map(\.bitPattern),
                    "classes \(config.numClasses), \(threads) threads, batch \(B)")
                if threads == 2 && B == 6 { print("blocked ResBlocks: \(ran) ran blocked at batch \(B)") }
            }
        }
    }

    /// Frozen (packed) weights at one batch size, then another whose primitive wants another
    /// Winograd weight layout (they cannot be reordered into one another), then back: each output
    /// bitwise equal to the same batch with unfrozen weights.
    func testFrozenWeightsAcrossBatchSizes() throws {
        try requireWinograd()
        ConvolutionAlgorithm.current = .winograd
        let net = try UNet(UNetConfig())
        randomizeParameters(net.parameters, seed: 41, scale: 0.2)
        let n = net.sampleSize
        let x = randomArray(16 * n, seed: 42), c = randomArray(16, seed: 43)
        var unfrozen: [Int: [Float]] = [:]
        for b in [1, 16] { unfrozen[b] = net.forward(x: Array(x[0..<(b * n)]), cNoise: Array(c[0..<b]), labels: nil) }
        net.parameters.weightsFrozen = true
        for b in [1, 16, 1, 16] {
            let y = net.forward(x: Array(x[0..<(b * n)]), cNoise: Array(c[0..<b]), labels: nil)
            XCTAssertEqual(y.map(\.bitPattern), unfrozen[b]!.map(\.bitPattern), "frozen, batch \(b)")
        }
    }
}

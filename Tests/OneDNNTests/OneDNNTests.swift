import Foundation
import Synchronization
import TestSupport
import XCTest

@testable import OneDNN

/// Naive NCHW convolution with Double accumulation (the reference for every oneDNN result).
private struct NaiveConv {
    let b: Int, c: Int, oc: Int, h: Int, w: Int, k: Int, s: Int, p: Int
    var ho: Int { (h + 2 * p - k) / s + 1 }
    var wo: Int { (w + 2 * p - k) / s + 1 }

    init(_ key: DNNLConvolutionKey) {
        (b, c, oc, h, w, k, s, p) = (
            key.batch, key.inChannels, key.outChannels, key.height, key.width,
            key.kernel, key.stride, key.padding
        )
    }

    /// Calls body(n, o, oy, ox, ci, iy, ix, weightIndex) for every in-image tap.
    func forEachTap(_ body: (Int, Int, Int, Int, Int, Int, Int, Int) -> Void) {
        for n in 0..<b {
            for o in 0..<oc {
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        for ci in 0..<c {
                            for ky in 0..<k {
                                let iy = oy * s + ky - p
                                if iy < 0 || iy >= h { continue }
                                for kx in 0..<k {
                                    let ix = ox * s + kx - p
                                    if ix < 0 || ix >= w { continue }
                                    body(n, o, oy, ox, ci, iy, ix, ((o * c + ci) * k + ky) * k + kx)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    func forward(x: [Float], wt: [Float], bias: [Float]?) -> [Float] {
        var y = [Double](repeating: 0, count: b * oc * ho * wo)
        forEachTap { n, o, oy, ox, ci, iy, ix, wi in
            y[((n * oc + o) * ho + oy) * wo + ox] += Double(wt[wi]) * Double(x[((n * c + ci) * h + iy) * w + ix])
        }
        if let bias {
            for n in 0..<b {
                for o in 0..<oc { for j in 0..<(ho * wo) { y[(n * oc + o) * ho * wo + j] += Double(bias[o]) } }
            }
        }
        return y.map { Float($0) }
    }

    func backwardData(dy: [Float], wt: [Float]) -> [Float] {
        var dx = [Double](repeating: 0, count: b * c * h * w)
        forEachTap { n, o, oy, ox, ci, iy, ix, wi in
            dx[((n * c + ci) * h + iy) * w + ix] += Double(wt[wi]) * Double(dy[((n * oc + o) * ho + oy) * wo + ox])
        }
        return dx.map { Float($0) }
    }

    func backwardWeights(x: [Float], dy: [Float]) -> (dw: [Float], db: [Float]) {
        var dw = [Double](repeating: 0, count: oc * c * k * k)
        var db = [Double](repeating: 0, count: oc)
        forEachTap { n, o, oy, ox, ci, iy, ix, wi in
            dw[wi] += Double(x[((n * c + ci) * h + iy) * w + ix]) * Double(dy[((n * oc + o) * ho + oy) * wo + ox])
        }
        for n in 0..<b {
            for o in 0..<oc { for j in 0..<(ho * wo) { db[o] += Double(dy[(n * oc + o) * ho * wo + j]) } }
        }
        return (dw.map { Float($0) }, db.map { Float($0) })
    }
}

private struct Rng {
    var state: UInt64
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 1_000_000
    }
    mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

/// max |a - ref| / max |ref| (max-norm relative error).
private func relError(_ a: [Float], _ ref: [Float]) -> Double {
    precondition(a.count == ref.count)
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        num = max(num, abs(Double(a[i]) - Double(ref[i])))
        den = max(den, abs(Double(ref[i])))
    }
    return num / max(den, 1e-30)
}

private func toLayout(_ nchw: [Float], _ layout: DNNLActivationLayout, _ b: Int, _ c: Int, _ h: Int, _ w: Int)
    -> [Float]
{
    DNNLLayout.permute(nchw, batch: b, channels: c, height: h, width: w, from: .nchw, to: DNNLTensorLayout(layout))
}

private func fromLayout(_ t: [Float], _ layout: DNNLActivationLayout, _ b: Int, _ c: Int, _ h: Int, _ w: Int) -> [Float]
{
    DNNLLayout.permute(t, batch: b, channels: c, height: h, width: w, from: DNNLTensorLayout(layout), to: .nchw)
}

final class OneDNNTests: XCTestCase {
    /// (batch, C, OC, H, W, k, stride, pad, bias)
    static let shapes: [(Int, Int, Int, Int, Int, Int, Int, Int, Bool)] = [
        (2, 4, 8, 9, 9, 3, 1, 1, true),  // 3x3 pad 1 stride 1
        (2, 8, 16, 10, 10, 3, 2, 1, true),  // 3x3 stride 2 pad 1
        (3, 16, 8, 6, 6, 1, 1, 0, true),  // 1x1
        (2, 1, 32, 12, 12, 3, 1, 1, true),  // 1 -> 32 input conv
        (2, 64, 64, 14, 14, 3, 1, 1, true),  // 64 -> 64 at 14x14
        (2, 5, 6, 7, 7, 3, 2, 1, true),  // odd sizes, stride 2 on an odd input
        (1, 3, 4, 7, 7, 3, 1, 0, false),  // odd, no padding, no bias
        (2, 6, 10, 7, 5, 3, 1, 1, false),  // non-square input
    ]

    func testEngineInfo() throws {
        _ = try OneDNNEngine.shared()
        print("OneDNN: \(OneDNNEngine.summary)")
        XCTAssertEqual(OneDNNEngine.version, "2.6.3")
        XCTAssertFalse(OneDNNEngine.effectiveISA.isEmpty)
    }

    /// Forward, backward-data and backward-weights/bias against the naive reference, for every
    /// shape, both activation layouts, plain and packed weights.
    func testConvolutionMatchesReference() throws {
        try checkAllShapes()
    }

    /// Winograd (where oneDNN offers it: 3x3 stride 1 on AVX-512) against the same reference, with
    /// the same tolerances; on an AVX-512 CPU it must be offered for the 3x3 stride-1 shapes.
    func testWinogradMatchesReference() throws {
        let ran = try checkAllShapes(algorithm: .winograd)
        print("winograd ran on \(ran) shape/layout pairs (isa \(OneDNNEngine.effectiveISA))")
        if OneDNNEngine.effectiveISA.hasPrefix("avx512") { XCTAssertGreaterThanOrEqual(ran, 8) }
    }

    /// Runs every shape in every layout by `algorithm`; returns how many oneDNN offered.
    @discardableResult
    func checkAllShapes(algorithm: DNNLAlgorithm = .direct) throws -> Int {
        var rng = Rng(state: 42)
        var ran = 0
        for (b, c, oc, h, w, k, s, p, hasBias) in Self.shapes {
            for layout in DNNLActivationLayout.allCases {
                let key = DNNLConvolutionKey(
                    batch: b, inChannels: c, outChannels: oc, height: h, width: w, kernel: k,
                    stride: s, padding: p, bias: hasBias, layout: layout, training: true, algorithm: algorithm)
                let offered: DNNLConvolution? =
                    algorithm == .direct
                    ? try DNNLConvolutionCache.shared.convolution(key)
                    : try? DNNLConvolutionCache.shared.convolution(key)
                guard let conv = offered else { continue }
                ran += 1
                let ref = NaiveConv(key)
                let x = rng.array(key.srcCount), wt = rng.array(key.weightCount), dy = rng.array(key.dstCount)
                let bias: [Float]? = hasBias ? rng.array(oc) : nil
                let xL = toLayout(x, layout, b, c, h, w), dyL = toLayout(dy, layout, b, oc, ref.ho, ref.wo)
                let scratch = try DNNLScratch(bytes: conv.scratchBytes)
                let what = "\(key) [\(conv.forwardImplementation)]"

                // Forward, plain and packed weights, caller scratch and owned scratch.
                let yRef = ref.forward(x: x, wt: wt, bias: bias)
                var y = [Float](repeating: .nan, count: key.dstCount)
                try conv.forward(src: xL, weights: wt, bias: bias, dst: &y, scratch: scratch)
                XCTAssertLessThan(relError(fromLayout(y, layout, b, oc, ref.ho, ref.wo), yRef), 1e-4, "forward \(what)")
                let packed = try conv.packWeights(wt)
                var y2 = [Float](repeating: .nan, count: key.dstCount)
                try conv.forward(src: xL, packed: packed, bias: bias, dst: &y2)
                XCTAssertEqual(y, y2, "forward packed == plain \(what)")

                // Backward data.
                let dxRef = ref.backwardData(dy: dy, wt: wt)
                var dx = [Float](repeating: .nan, count: key.srcCount)
                try conv.backwardData(diffDst: dyL, weights: wt, diffSrc: &dx, scratch: scratch)
                XCTAssertLessThan(relError(fromLayout(dx, layout, b, c, h, w), dxRef), 1e-4, "backward-data \(what)")
                var dx2 = [Float](repeating: .nan, count: key.srcCount)
                try conv.backwardData(diffDst: dyL, packed: packed, diffSrc: &dx2, scratch: scratch)
                XCTAssertEqual(dx, dx2, "backward-data packed == plain \(what)")

                // Backward weights + bias.
                let (dwRef, dbRef) = ref.backwardWeights(x: x, dy: dy)
                var dw = [Float](repeating: .nan, count: key.weightCount)
                var db = [Float](repeating: .nan, count: oc)
                if hasBias {
                    try conv.backwardWeights(src: xL, diffDst: dyL, diffWeights: &dw, diffBias: &db, scratch: scratch)
                    XCTAssertLessThan(relError(db, dbRef), 1e-4, "backward-bias \(what)")
                } else {
                    try conv.backwardWeights(src: xL, diffDst: dyL, diffWeights: &dw, diffBias: nil, scratch: scratch)
                }
                XCTAssertLessThan(relError(dw, dwRef), 1e-4, "backward-weights \(what)")
            }
        }
        return ran
    }

    /// Residual sum + SiLU fused as post-ops: y = silu(conv(x) + bias + residual).
    func testPostOpsSumSiLU() throws {
        for algorithm in DNNLAlgorithm.allCases {
            let key = DNNLConvolutionKey(
                batch: 2, inChannels: 8, outChannels: 16, height: 9, width: 9, kernel: 3,
                stride: 1, padding: 1, bias: true, layout: .nhwc,
                postOps: [.sum(scale: 1), .silu], algorithm: algorithm)
            // Winograd only where oneDNN offers it (AVX-512); its residual is staged in.
            guard let conv = algorithm == .direct ? try DNNLConvolution(key) : try? DNNLConvolution(key) else {
                continue
            }
            try checkPostOps(conv)
        }
    }

    private func checkPostOps(_ conv: DNNLConvolution) throws {
        var rng = Rng(state: 7)
        let key = conv.key
        let ref = NaiveConv(key)
        let x = rng.array(key.srcCount), wt = rng.array(key.weightCount), bias = rng.array(16)
        let residual = rng.array(key.dstCount)
        let conv0 = ref.forward(x: x, wt: wt, bias: bias)
        let expected = zip(conv0, residual).map { a, r -> Float in
            let v = Double(a) + Double(r)
            return Float(v / (1 + exp(-v)))
        }
        var y = toLayout(residual, .nhwc, 2, 16, ref.ho, ref.wo)
        try conv.forward(src: toLayout(x, .nhwc, 2, 8, 9, 9), weights: wt, bias: bias, dst: &y)
        XCTAssertLessThan(relError(fromLayout(y, .nhwc, 2, 16, ref.ho, ref.wo), expected), 1e-4)
    }

    /// CBHW <-> NCHW / NHWC through oneDNN reorders equals the plain-loop permutation.
    func testLayoutConversions() throws {
        var rng = Rng(state: 3)
        let (b, c, h, w) = (3, 5, 7, 6)
        let n = b * c * h * w
        for from in DNNLTensorLayout.allCases {
            for to in DNNLTensorLayout.allCases {
                let src = rng.array(n)
                var dst = [Float](repeating: .nan, count: n)
                try DNNLLayout.convert(src, &dst, batch: b, channels: c, height: h, width: w, from: from, to: to)
                XCTAssertEqual(
                    dst, DNNLLayout.permute(src, batch: b, channels: c, height: h, width: w, from: from, to: to),
                    "\(from) -> \(to)")
                // Round trip.
                let back = DNNLLayout.permute(dst, batch: b, channels: c, height: h, width: w, from: to, to: from)
                XCTAssertEqual(back, src)
            }
        }
    }

    /// A batch of 16 against the same samples one at a time (batch-1 primitives): bitwise?
    func testBatchInvariance() throws {
        var rng = Rng(state: 11)
        let (B, C, OC, H) = (16, 64, 64, 14)
        for layout in DNNLActivationLayout.allCases {
            let key = DNNLConvolutionKey(
                batch: B, inChannels: C, outChannels: OC, height: H, width: H, kernel: 3,
                stride: 1, padding: 1, bias: true, layout: layout, training: true)
            let key1 = DNNLConvolutionKey(
                batch: 1, inChannels: C, outChannels: OC, height: H, width: H, kernel: 3,
                stride: 1, padding: 1, bias: true, layout: layout, training: true)
            let conv = try DNNLConvolution(key), conv1 = try DNNLConvolution(key1)
            let x = rng.array(key.srcCount), wt = rng.array(key.weightCount), bias = rng.array(OC)
            let dy = rng.array(key.dstCount)
            var y = [Float](repeating: 0, count: key.dstCount), dx = [Float](repeating: 0, count: key.srcCount)
            try conv.forward(src: x, weights: wt, bias: bias, dst: &y)
            try conv.backwardData(diffDst: dy, weights: wt, diffSrc: &dx)
            // Both layouts keep each sample contiguous (N outermost).
            let per = C * H * H, perOut = OC * H * H
            var fwdSame = true, bwdSame = true
            for n in 0..<B {
                var y1 = [Float](repeating: 0, count: perOut), dx1 = [Float](repeating: 0, count: per)
                try conv1.forward(src: Array(x[(n * per)..<((n + 1) * per)]), weights: wt, bias: bias, dst: &y1)
                try conv1.backwardData(
                    diffDst: Array(dy[(n * perOut)..<((n + 1) * perOut)]), weights: wt, diffSrc: &dx1)
                fwdSame = fwdSame && y1 == Array(y[(n * perOut)..<((n + 1) * perOut)])
                bwdSame = bwdSame && dx1 == Array(dx[(n * per)..<((n + 1) * per)])
            }
            print(
                "batch invariance \(layout.rawValue): forward bitwise \(fwdSame) (\(conv.forwardImplementation) vs \(conv1.forwardImplementation)), backward-data bitwise \(bwdSame) (\(conv.backwardDataImplementation!) vs \(conv1.backwardDataImplementation!)); \(conv.layoutSummary)"
            )
            if layout == .nhwc {
                XCTAssertTrue(fwdSame, "NHWC forward is batch invariant")
                XCTAssertTrue(bwdSame, "NHWC backward-data is batch invariant")
            }
        }
    }

    /// 1 vs 2 OpenMP threads (set on the calling thread): bitwise? Asserted for NHWC forward and
    /// backward-data; backward-weights (a reduction over the batch) is reported only.
    func testThreadCountInvariance() throws {
        var rng = Rng(state: 13)
        for layout in DNNLActivationLayout.allCases {
            let key = DNNLConvolutionKey(
                batch: 8, inChannels: 32, outChannels: 32, height: 14, width: 14, kernel: 3,
                stride: 1, padding: 1, bias: true, layout: layout, training: true)
            let conv = try DNNLConvolution(key)
            let x = rng.array(key.srcCount), wt = rng.array(key.weightCount), bias = rng.array(32),
                dy = rng.array(key.dstCount)
            func run(_ threads: Int) throws -> ([Float], [Float], [Float]) {
                OneDNNEngine.setThreadsForCurrentThread(threads)
                var y = [Float](repeating: 0, count: key.dstCount), dx = [Float](repeating: 0, count: key.srcCount)
                var dw = [Float](repeating: 0, count: key.weightCount), db = [Float](repeating: 0, count: 32)
                try conv.forward(src: x, weights: wt, bias: bias, dst: &y)
                try conv.backwardData(diffDst: dy, weights: wt, diffSrc: &dx)
                try conv.backwardWeights(src: x, diffDst: dy, diffWeights: &dw, diffBias: &db)
                return (y, dx, dw + db)
            }
            let saved = OneDNNEngine.maxThreads
            defer { OneDNNEngine.setThreadsForCurrentThread(saved) }
            let a = try run(1), b = try run(2)
            print(
                "threads 1 vs 2 \(layout.rawValue): forward \(a.0 == b.0), backward-data \(a.1 == b.1), backward-weights \(a.2 == b.2) (bitwise)"
            )
            if layout == .nhwc {
                XCTAssertEqual(a.0, b.0)
                XCTAssertEqual(a.1, b.1)
            }
        }
    }

    /// Concurrent calls on one convolution with one scratch per worker give the serial results.
    func testConcurrentExecution() throws {
        var rng = Rng(state: 5)
        let key = DNNLConvolutionKey(
            batch: 4, inChannels: 16, outChannels: 16, height: 12, width: 12, kernel: 3,
            stride: 1, padding: 1, bias: true, layout: .nhwc, training: true)
        let conv = try DNNLConvolutionCache.shared.convolution(key)
        XCTAssertTrue(try DNNLConvolutionCache.shared.convolution(key) === conv, "cache returns the same object")
        let inputs = (0..<8).map { _ in rng.array(key.srcCount) }
        let wt = rng.array(key.weightCount), bias = rng.array(16)
        let serial = try inputs.map { x -> [Float] in
            var y = [Float](repeating: 0, count: key.dstCount)
            try conv.forward(src: x, weights: wt, bias: bias, dst: &y)
            return y
        }
        let results = Mutex<[[Float]]>(Array(repeating: [], count: inputs.count))
        let failures = Atomic(0)
        DispatchQueue.concurrentPerform(iterations: inputs.count) { i in
            do {
                let scratch = try DNNLScratch(bytes: conv.scratchBytes)
                var y = [Float](repeating: 0, count: key.dstCount)
                try conv.forward(src: inputs[i], weights: wt, bias: bias, dst: &y, scratch: scratch)
                results.withLock { $0[i] = y }
            } catch {
                failures.add(1, ordering: .relaxed)
            }
        }
        XCTAssertEqual(failures.load(ordering: .relaxed), 0)
        let got = results.withLock { $0 }
        for i in 0..<inputs.count { XCTAssertEqual(got[i], serial[i], "worker \(i)") }
    }

    /// A scratch keeps its memory objects between calls and re-points them at each call's buffers:
    /// calls with fresh buffers on one scratch give bitwise what fresh scratches give, forward and
    /// backward interleaved, Winograd (staged through its blocked layout) where oneDNN has it, and
    /// the cache stops growing after the first round.
    func testMemoryObjectsAreReusedAcrossCalls() throws {
        var rng = Rng(state: 9)
        for algorithm in DNNLAlgorithm.allCases {
            let key = DNNLConvolutionKey(
                batch: 2, inChannels: 16, outChannels: 16, height: 12, width: 12, kernel: 3,
                stride: 1, padding: 1, bias: true, layout: .nhwc, training: true, algorithm: algorithm)
            guard let conv = try? DNNLConvolutionCache.shared.convolution(key) else { continue }  // no Winograd here
            let wt = rng.array(key.weightCount), bias = rng.array(16)
            let shared = try DNNLScratch(bytes: conv.scratchBytes)
            var sizes: [Int] = []
            for round in 0..<3 {
                let x = rng.array(key.srcCount), dy = rng.array(key.dstCount)
                var y = [Float](repeating: .nan, count: key.dstCount), yFresh = y
                var dx = [Float](repeating: .nan, count: key.srcCount), dxFresh = dx
                try conv.forward(src: x, weights: wt, bias: bias, dst: &y, scratch: shared)
                try conv.backwardData(diffDst: dy, weights: wt, diffSrc: &dx, scratch: shared)
                try conv.forward(
                    src: x, weights: wt, bias: bias, dst: &yFresh, scratch: DNNLScratch(bytes: conv.scratchBytes))
                try conv.backwardData(
                    diffDst: dy, weights: wt, diffSrc: &dxFresh, scratch: DNNLScratch(bytes: conv.scratchBytes))
                XCTAssertEqual(y, yFresh, "\(algorithm) round \(round) forward")
                XCTAssertEqual(dx, dxFresh, "\(algorithm) round \(round) backward data")
                let ref = NaiveConv(key).forward(x: fromLayout(x, .nhwc, 2, 16, 12, 12), wt: wt, bias: bias)
                XCTAssertLessThan(relError(fromLayout(y, .nhwc, 2, 16, 12, 12), ref), 1e-5, "\(algorithm)")
                sizes.append(shared.memories.count)
            }
            XCTAssertGreaterThan(sizes[0], 0, "\(algorithm)")
            XCTAssertEqual(Set(sizes).count, 1, "\(algorithm): the cache grew after the first round: \(sizes)")
        }
    }

    func testErrors() throws {
        let key = DNNLConvolutionKey(
            batch: 1, inChannels: 2, outChannels: 2, height: 4, width: 4, kernel: 3,
            padding: 1, bias: true)
        let conv = try DNNLConvolution(key)
        let x = [Float](repeating: 1, count: key.srcCount), w = [Float](repeating: 1, count: key.weightCount)
        var y = [Float](repeating: 0, count: key.dstCount)
        XCTAssertThrowsError(try conv.forward(src: x, weights: w, bias: nil, dst: &y)) { error in
            XCTAssertEqual((error as? OneDNNError)?.code, .invalidArgument)
        }
        XCTAssertThrowsError(try conv.backwardData(diffDst: y, weights: w, diffSrc: &y)) { error in
            XCTAssertEqual((error as? OneDNNError)?.code, .invalidArgument)
        }
        let tiny = try DNNLScratch(bytes: 0)
        let big = DNNLConvolutionKey(
            batch: 2, inChannels: 64, outChannels: 64, height: 14, width: 14, kernel: 3, padding: 1)
        let bigConv = try DNNLConvolution(big)
        if bigConv.scratchBytes > tiny.capacity {
            let bx = [Float](repeating: 0, count: big.srcCount), bw = [Float](repeating: 0, count: big.weightCount)
            let bb = [Float](repeating: 0, count: 64)
            var by = [Float](repeating: 0, count: big.dstCount)
            XCTAssertThrowsError(try bigConv.forward(src: bx, weights: bw, bias: bb, dst: &by, scratch: tiny))
        }
        XCTAssertThrowsError(
            try DNNLConvolution(
                DNNLConvolutionKey(
                    batch: 1, inChannels: 1, outChannels: 1, height: 2,
                    width: 2, kernel: 5)))
    }

    /// Reruns the reference checks in a child process with ONEDNN_MAX_CPU_ISA=SSE41 (the ISA is
    /// fixed at the first oneDNN call, so it needs a fresh process).
    func testSSE41Subprocess() throws {
        if ProcessInfo.processInfo.environment["ONEDNN_MAX_CPU_ISA"] != nil {
            throw XCTSkip("already in a restricted-ISA process")
        }
        let (status, out) = try runProcess(
            CommandLine.arguments[0], ["OneDNNTests.OneDNNTests/testUnderEnvironmentISA"],
            environment: ["ONEDNN_MAX_CPU_ISA": "SSE41", "ONEDNN_ISA_CHILD": "1"])
        print(
            out.split(separator: "\n").filter { $0.contains("ISA child") || $0.contains("error") }.joined(
                separator: "\n"))
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("ISA child: isa sse41"), out)
    }

    /// Only does work in the child process started by `testSSE41Subprocess`.
    func testUnderEnvironmentISA() throws {
        guard ProcessInfo.processInfo.environment["ONEDNN_ISA_CHILD"] == "1" else {
            throw XCTSkip("runs in the ONEDNN_MAX_CPU_ISA child process only")
        }
        let key = DNNLConvolutionKey(
            batch: 2, inChannels: 64, outChannels: 64, height: 14, width: 14, kernel: 3, padding: 1,
            layout: .nhwc, training: true)
        let conv = try DNNLConvolution(key)
        print(
            "ISA child: isa \(OneDNNEngine.effectiveISA), fwd \(conv.forwardImplementation), bwd-d \(conv.backwardDataImplementation!), bwd-w \(conv.backwardWeightsImplementation!), \(conv.layoutSummary)"
        )
        try checkAllShapes()
    }
}

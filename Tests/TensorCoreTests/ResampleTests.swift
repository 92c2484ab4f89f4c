import TensorCore
import TestSupport
import XCTest

final class ResampleTests: XCTestCase {
    private func randn(_ n: Int, seed: UInt64) -> [Float] {
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { SampleNoise.fill(seed: seed, index: 0, $0) }
        return out
    }

    private func dot(_ a: [Float], _ b: [Float]) -> Double {
        zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }

    func testUpsampleMatchesReferenceAndIsAdjoint() {
        for (p, h, w) in [(1, 1, 1), (3, 5, 6), (6, 7, 7), (2, 4, 9)] {
            let x = randn(p * h * w, seed: 1), dy = randn(p * 4 * h * w, seed: 2)
            var y = [Float](repeating: .nan, count: dy.count), yr = y
            Resample.upsampleNearest2x(x, planes: p, height: h, width: w, y: &y)
            Reference.upsampleNearest2x(x, planes: p, height: h, width: w, y: &yr)
            XCTAssertEqual(y, yr)
            var dx = randn(x.count, seed: 3), dxr = dx
            let start = dx
            Resample.upsampleNearest2xBackward(dy: dy, planes: p, height: h, width: w, dx: &dx)
            Reference.upsampleNearest2xBackward(dy: dy, planes: p, height: h, width: w, dx: &dxr)
            XCTAssertLessThan(maxRelativeError(dx, dxr, floor: 1), 1e-6)
            // <up(x), dy> == <x, up^T(dy)>
            let grad = zip(dx, start).map { $0 - $1 }
            XCTAssertEqual(dot(y, dy), dot(x, grad), accuracy: 1e-4 * max(1, abs(dot(y, dy))))
        }
        let x: [Float] = [1, 2, 3, 4]
        var y = [Float](repeating: 0, count: 16)
        Resample.upsampleNearest2x(x, planes: 1, height: 2, width: 2, y: &y)
        XCTAssertEqual(y, [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
    }

    func testAvgPoolMatchesReferenceAndIsAdjoint() {
        for (p, h, w) in [(1, 2, 2), (3, 6, 8), (5, 14, 14), (2, 4, 10)] {
            let x = randn(p * h * w, seed: 4), dy = randn(p * h * w / 4, seed: 5)
            var y = [Float](repeating: .nan, count: dy.count), yr = y
            Resample.avgPool2x2(x, planes: p, height: h, width: w, y: &y)
            Reference.avgPool2x2(x, planes: p, height: h, width: w, y: &yr)
            XCTAssertLessThan(maxRelativeError(y, yr, floor: 1), 1e-6)
            var dx = randn(x.count, seed: 6), dxr = dx
            let start = dx
            Resample.avgPool2x2Backward(dy: dy, planes: p, height: h, width: w, dx: &dx)
            Reference.avgPool2x2Backward(dy: dy, planes: p, height: h, width: w, dx: &dxr)
            XCTAssertLessThan(maxRelativeError(dx, dxr, floor: 1), 1e-6)
            let grad = zip(dx, start).map { $0 - $1 }
            XCTAssertEqual(dot(y, dy), dot(x, grad), accuracy: 1e-4 * max(1, abs(dot(y, dy))))
        }
        let x: [Float] = [1, 2, 3, 4, 5, 6, 7, 8]  // 2x4
        var y = [Float](repeating: 0, count: 2)
        Resample.avgPool2x2(x, planes: 1, height: 2, width: 4, y: &y)
        XCTAssertEqual(y, [3.5, 5.5])
    }

    func testGlobalAvgPoolMatchesReferenceAndIsAdjoint() {
        for (p, hw) in [(1, 1), (4, 49), (6, 196), (3, 7)] {
            let x = randn(p * hw, seed: 7), dy = randn(p, seed: 8)
            var y = [Float](repeating: .nan, count: p), yr = y
            Resample.globalAvgPool(x, planes: p, hw: hw, y: &y)
            Reference.globalAvgPool(x, planes: p, hw: hw, y: &yr)
            XCTAssertLessThan(maxRelativeError(y, yr, floor: 1), 1e-6)
            var dx = randn(x.count, seed: 9), dxr = dx
            let start = dx
            Resample.globalAvgPoolBackward(dy: dy, planes: p, hw: hw, dx: &dx)
            Reference.globalAvgPoolBackward(dy: dy, planes: p, hw: hw, dx: &dxr)
            XCTAssertLessThan(maxRelativeError(dx, dxr, floor: 1), 1e-6)
            let grad = zip(dx, start).map { $0 - $1 }
            XCTAssertEqual(dot(y, dy), dot(x, grad), accuracy: 1e-4 * max(1, abs(dot(y, dy))))
        }
    }
}

import Foundation
import NN
import TensorCore
import XCTest

@testable import Diffusion

final class PrecondTests: XCTestCase {
    func testCoefficientsMatchClosedForm() {
        let sd = 0.5
        for sigma in [0.002, 0.05, 0.5, 1.0, 2.5, 80.0] {
            let c = EDMCoefficients(sigma: Float(sigma))
            let r = (sigma * sigma + sd * sd).squareRoot()
            XCTAssertEqual(
                Double(c.cSkip), sd * sd / (sigma * sigma + sd * sd), accuracy: 1e-6 * max(1, sd * sd / (r * r)))
            XCTAssertEqual(Double(c.cOut), sigma * sd / r, accuracy: 1e-6 * sigma * sd / r)
            XCTAssertEqual(Double(c.cIn), 1 / r, accuracy: 1e-6 / r)
            XCTAssertEqual(Double(c.cNoise), Foundation.log(sigma) / 4, accuracy: 1e-6)
        }
        // At sigma = sigma_data: c_skip = 1/2, c_out = c_in * sd^2 = sd / sqrt 2.
        let c = EDMCoefficients(sigma: 0.5)
        XCTAssertEqual(c.cSkip, 0.5, accuracy: 1e-7)
        XCTAssertEqual(c.cOut, 0.5 / Float(2).squareRoot(), accuracy: 1e-7)
    }

    func testForwardIsSkipPlusScaledNetwork() throws {
        let net = try randomMLP()
        let d = EDMDenoiser(net)
        let sigma: [Float] = [0.01, 0.7, 30]
        let x = normals(9, seed: 3)
        let out = d.forward(x: x, sigma: sigma)
        let cs = sigma.map { EDMCoefficients(sigma: $0) }
        var xin = x
        for b in 0..<3 { for j in 0..<3 { xin[b * 3 + j] *= cs[b].cIn } }
        let f = net.forward(x: xin, cNoise: cs.map(\.cNoise))
        for b in 0..<3 {
            for j in 0..<3 {
                let i = b * 3 + j
                XCTAssertEqual(out[i], cs[b].cSkip * x[i] + cs[b].cOut * f[i], accuracy: 1e-5)
            }
        }
    }

    /// dL/dx and dL/dtheta of L = sum(D(x, sigma) * R) against central differences.
    func testBackwardMatchesFiniteDifferences() throws {
        for numClasses in [0, 3] {
            let net = try randomMLP(numClasses: numClasses)
            let d = EDMDenoiser(net)
            let batch = 4
            let sigma: [Float] = [0.03, 0.4, 2.5, 20]
            let x = normals(batch * 3, seed: 5).map { $0 * 0.8 }
            let labels: [Int32]? = numClasses > 0 ? [0, 2, 1, 2] : nil
            let r = normals(batch * 3, seed: 6)
            func loss(_ x: [Float]) -> Double {
                let y = d.forward(x: x, sigma: sigma, labels: labels)
                return zip(y, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            }
            net.parameters.zeroGrad()
            _ = d.forward(x: x, sigma: sigma, labels: labels)
            let dx = d.backward(dOut: r)
            let grads = net.parameters.grads.array
            let eps: Float = 1e-2
            var worst = 0.0, at = ""
            for j in 0..<x.count {
                var xp = x, xm = x
                xp[j] += eps
                xm[j] -= eps
                let fd = (loss(xp) - loss(xm)) / (2 * Double(eps))
                let e = relErr(fd, Double(dx[j]))
                if e > worst { worst = e; at = "x[\(j)] fd=\(fd) analytic=\(dx[j])" }
            }
            let v = net.parameters.values.ptr
            var rng = Philox4x32(seed: 8)
            for entry in net.parameters.entries {
                for _ in 0..<min(4, entry.count) {
                    let j = entry.offset + rng.nextInt(below: entry.count)
                    let old = v[j]
                    v[j] = old + eps
                    let lp = loss(x)
                    v[j] = old - eps
                    let lm = loss(x)
                    v[j] = old
                    let fd = (lp - lm) / (2 * Double(eps))
                    let e = relErr(fd, Double(grads[j]))
                    if e > worst { worst = e; at = "\(entry.name) fd=\(fd) analytic=\(grads[j])" }
                }
            }
            XCTAssertLessThan(worst, 2e-2, "classes=\(numClasses): worst mismatch at \(at)")
        }
    }
}

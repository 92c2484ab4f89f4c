import Foundation
import TensorCore
import XCTest

@testable import NN

/// The image density-ratio classifier: the teacher U-Net's encoder half with a head. Gradients
/// against finite differences (input and every parameter tensor), initialisation from the teacher,
/// checkpoint round trip through the registry.
final class RatioClassifierUNetTests: XCTestCase {
    static func tinyUNet(numClasses: Int = 0) -> UNetConfig {
        var c = UNetConfig()
        c.inChannels = 1
        c.outChannels = 1
        c.resolution = 8
        c.channels = [4, 8]
        c.blocksPerLevel = 1
        c.noiseChannels = 4
        c.embChannels = 8
        c.numClasses = numClasses
        return c
    }

    func testGradientsMatchFiniteDifferences() throws {
        let net = try RatioClassifierUNet(RatioClassifierUNetConfig(unet: Self.tinyUNet()))
        randomizeParameters(net.parameters, seed: 21)
        let sigma: [Float] = [0.05, 0.9, 6]
        GradientCheck(eps: 1e-2, tolerance: 3e-2).check(
            store: net.parameters, input: randomArray(3 * 64, seed: 5),
            run: { net.forward(x: $0, sigma: sigma) }, back: { net.backward(dLogit: $0) })
    }

    func testConditionalGradientsMatchFiniteDifferences() throws {
        let net = try RatioClassifierUNet(RatioClassifierUNetConfig(unet: Self.tinyUNet(numClasses: 3)))
        randomizeParameters(net.parameters, seed: 22)
        let sigma: [Float] = [0.3, 2]
        GradientCheck(eps: 1e-2, tolerance: 3e-2).check(
            store: net.parameters, input: randomArray(2 * 64, seed: 6),
            run: { net.forward(x: $0, sigma: sigma, labels: [2, 0]) }, back: { net.backward(dLogit: $0) })
    }

    /// Started from a teacher, the classifier holds the teacher's encoder, middle block and
    /// embedding exactly; only the head (zero output layer: logit 0) is new.
    func testStartsFromTheTeachersEncoder() throws {
        let teacher = try UNet(Self.tinyUNet(), seed: 3)
        randomizeParameters(teacher.parameters, seed: 23)
        let c = try RatioClassifierUNet(RatioClassifierUNetConfig(unet: Self.tinyUNet()), seed: 9)
        let copied = c.initialise(fromTeacher: teacher)
        var head = 0
        for (name, t) in c.parameters.namedTensors() {
            if name.hasPrefix("head.") { head += t.count; continue }
            XCTAssertTrue(name.hasPrefix("enc.") || name.hasPrefix("mid.") || name.hasPrefix("map_"), name)
            XCTAssertEqual(t.storage, try teacher.parameters.tensor(name).storage, name)
        }
        XCTAssertEqual(copied + head, c.parameters.count, "everything but the head came from the teacher")
        XCTAssertLessThan(c.parameters.count, teacher.parameters.count / 2 + head, "the encoder half")
        XCTAssertEqual(
            c.forward(x: randomArray(2 * 64, seed: 7), sigma: [0.5, 1]), [0, 0], "zero head: ratio 1 at the start")
    }

    func testRegistryRoundTripAndErrors() throws {
        let net = try RatioClassifierUNet(RatioClassifierUNetConfig(unet: Self.tinyUNet(numClasses: 2)))
        randomizeParameters(net.parameters, seed: 24)
        let back = try RatioClassifiers.make(arch: net.architecture, configJSON: net.configJSON)
        let byName = Dictionary(net.parameters.namedTensors(), uniquingKeysWith: { a, _ in a })
        try back.parameters.load { byName[$0] }
        let x = randomArray(2 * 64, seed: 8)
        XCTAssertEqual(
            back.forward(x: x, sigma: [0.2, 3], labels: [1, 0]), net.forward(x: x, sigma: [0.2, 3], labels: [1, 0]))
        XCTAssertEqual(back.sampleSize, 64)
        XCTAssertEqual(back.numClasses, 2)
        XCTAssertThrowsError(try RatioClassifiers.make(arch: "unet", configJSON: net.configJSON))
        XCTAssertThrowsError(try RatioClassifiers.make(arch: "ratio-unet", configJSON: "{}"))
        XCTAssertGreaterThan(net.flopsPerSample, 0)
    }
}

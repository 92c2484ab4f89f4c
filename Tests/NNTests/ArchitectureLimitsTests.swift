import Foundation
import TensorCore
import XCTest

@testable import NN

/// Architecture fields from untrusted checkpoints: bounded by `ArchitectureLimits`, and a network
/// is sized (`ParameterStore.plannedCount`) before it is allocated.
final class ArchitectureLimitsTests: XCTestCase {
    func unet(_ change: (inout UNetConfig) -> Void = { _ in }) -> UNetConfig {
        var c = UNetConfig()
        c.resolution = 8
        c.channels = [8, 16]
        c.blocksPerLevel = 1
        c.noiseChannels = 8
        c.embChannels = 16
        change(&c)
        return c
    }

    func testPlannedCountMatchesTheBuiltNetworkAndAllocatesNothing() throws {
        let configs: [(String, () throws -> any ParameterOwner)] = [
            ("unet", { try UNet(self.unet()) }),
            (
                "unet conditional 3 levels",
                {
                    try UNet(
                        self.unet {
                            $0.channels = [8, 16, 16]; $0.numClasses = 7; $0.blocksPerLevel = 2
                        })
                }
            ),
            (
                "unet rgb",
                {
                    try UNet(
                        self.unet {
                            $0.inChannels = 3; $0.outChannels = 3; $0.resolution = 16
                        })
                }
            ),
            ("mlp", { try MLPDenoiser(MLPConfig(dim: 5, width: 24, blocks: 3, noiseChannels: 8, numClasses: 4)) }),
            (
                "ratio-mlp",
                { try RatioClassifierMLP(RatioClassifierConfig(dim: 3, width: 16, blocks: 2, noiseChannels: 8)) }
            ),
            ("ratio-unet", { try RatioClassifierUNet(RatioClassifierUNetConfig(unet: self.unet())) }),
            ("lenet", { try LeNet(LeNetConfig()) }),
        ]
        for (name, build) in configs {
            let planned = try ParameterStore.plannedCount(build)
            let built = try build()
            XCTAssertEqual(planned, built.parameters.count, name)
            XCTAssertGreaterThan(planned, 0, name)
            XCTAssertTrue(built.parameters.allocates, name)
        }
        // The planned network holds no values.
        var layout: (any ParameterOwner)?
        _ = try ParameterStore.plannedCount {
            let n = try UNet(self.unet()); layout = n; return n
        }
        XCTAssertEqual(layout?.parameters.values.count, 0)
        XCTAssertFalse(layout?.parameters.allocates ?? true)
        // A huge architecture within the field bounds is sized, not allocated: 2.4e11 parameters.
        let huge = unet {
            $0.channels = [8_192, 8_192, 8_192, 8_192]; $0.blocksPerLevel = 64; $0.resolution = 64
        }
        let t0 = ContinuousClock.now
        let n = try ParameterStore.plannedCount { try UNet(huge) }
        XCTAssertGreaterThan(n, 100_000_000_000)
        XCTAssertLessThan(t0.duration(to: .now), .seconds(1))
        let small = try UNet(unet()).parameters.namedTensors()
        XCTAssertThrowsError(
            try NetworkCheckpoint.checkPlanned(
                shapes: Dictionary(uniqueKeysWithValues: small.map { ($0.0, $0.1.shape) })
            ) {
                try UNet(huge)
            }
        ) { e in XCTAssertTrue("\(e)".contains("expected shape"), "\(e)") }
        XCTAssertNoThrow(
            try NetworkCheckpoint.checkPlanned(
                shapes: Dictionary(uniqueKeysWithValues: small.map { ($0.0, $0.1.shape) }), exact: true
            ) {
                try UNet(self.unet())
            })
    }

    func testEveryFieldIsRefusedAtItsExtremes() {
        let extremes = [0, -1, 1 << 31, 1 << 60, Int.max]
        let fields: [(String, WritableKeyPath<UNetConfig, Int>)] = [
            ("in_channels", \.inChannels), ("out_channels", \.outChannels), ("resolution", \.resolution),
            ("blocks_per_level", \.blocksPerLevel), ("noise_channels", \.noiseChannels),
            ("emb_channels", \.embChannels),
            ("num_classes", \.numClasses),
        ]
        for (name, key) in fields {
            for v in extremes where !(name == "num_classes" && v == 0) {
                var c = unet()
                c[keyPath: key] = v
                XCTAssertThrowsError(try c.validate(), "\(name) \(v)") { e in
                    XCTAssertTrue("\(e)".contains("unet config"), "\(e)")
                }
            }
        }
        for v in extremes {
            XCTAssertThrowsError(try unet { $0.channels = [v, 8] }.validate(), "channels [\(v), 8]")
            XCTAssertThrowsError(try MLPConfig(dim: v == 0 ? -5 : v).validate(), "mlp dim \(v)")
            XCTAssertThrowsError(try MLPConfig(width: v).validate(), "mlp width \(v)")
            XCTAssertThrowsError(try RatioClassifierConfig(width: v).validate(), "ratio-mlp width \(v)")
            if v != 0 { XCTAssertThrowsError(try MLPConfig(blocks: v).validate(), "mlp blocks \(v)") }
        }
        XCTAssertThrowsError(try unet { $0.blocksPerLevel = 2001 }.validate())
        XCTAssertThrowsError(
            try unet {
                $0.channels = Array(repeating: 8, count: 9); $0.resolution = 256
            }.validate())
        XCTAssertThrowsError(
            try unet {
                $0.channels = [8_192]; $0.resolution = 1_024
            }.validate(), "activation per sample bound")
        XCTAssertNoThrow(try unet().validate())
        XCTAssertNoThrow(try MLPConfig(dim: 2, width: 16, blocks: 0).validate())
    }
}

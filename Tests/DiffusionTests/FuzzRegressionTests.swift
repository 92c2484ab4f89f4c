import Diffusion
import Foundation
import NN
import TensorCore
import TestSupport
import XCTest

/// Every input the fuzzers (fuzz/) found to crash or hang the loaders is kept under
/// Tests/Data/fuzz-regressions/TARGET/ and must now be refused with a thrown error, quickly.
final class FuzzRegressionTests: XCTestCase {
    func files(_ target: String) throws -> [String] {
        let dir = packageRoot + "/Tests/Data/fuzz-regressions/" + target
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        return names.filter { !$0.hasPrefix(".") }.sorted().map { dir + "/" + $0 }
    }

    func testEveryKnownCrashIsRefusedWithAMessage() throws {
        let found = try files("safetensors") + files("snapshot")
        XCTAssertGreaterThanOrEqual(found.count, 2, "the regression files are missing")
        for path in found {
            let start = ContinuousClock.now
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            do {
                let file = try SafetensorsFile.decode(bytes: bytes)
                let snap = try Snapshot.decode(file, source: path)
                _ = try snap.classifier()
                XCTFail("\(path) loaded")
            } catch {
                XCTAssertFalse("\(error)".isEmpty, path)
                if path.contains("groupnorm") { XCTAssertTrue("\(error)".contains("GroupNorm"), "\(path): \(error)") }
            }
            XCTAssertLessThan(ContinuousClock.now - start, .seconds(1), path)
        }
    }

    func testGroupNormWidthsAreCheckedForEveryConcatenation() throws {
        var c = UNetConfig()
        c.channels = [36, 100]  // each a multiple of 4; 100 + 36 = 136 concatenated is not a multiple of 32
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("136"), "\($0)") }
        c.channels = [132]
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("132"), "\($0)") }
        for ok in [[32, 64, 64], [8, 8], [40, 80], [128, 256]] {
            c.channels = ok
            XCTAssertNoThrow(try c.validate(), "\(ok)")
            c.resolution = 8
            XCTAssertNoThrow(try UNet(c, seed: 1), "\(ok)")
            c.resolution = 28
        }
    }
}

import Diffusion
import Engine
import Foundation
import ServingTestSupport
import XCTest

/// The one publish path (`RepositoryLayout.publish`, `onestep publish`, `make publish`): versions
/// numbered on, written aside and renamed into place, never overwritten, bad input refused with
/// nothing left behind.
final class PublishTests: XCTestCase {
    func entries(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    func testPublishNumbersVersionsAndNeverOverwrites() throws {
        let root = try Fixtures.repository()
        let snap = try Fixtures.vectorGenerator(seed: 3)
        XCTAssertEqual(try RepositoryLayout.publish(snap, root: root, model: "vec").version, 1)
        let second = try RepositoryLayout.publish(snap, root: root, model: "vec")
        XCTAssertEqual(second.version, 2)
        XCTAssertEqual(second.path, "\(root)/vec/2/model.safetensors")
        XCTAssertEqual(try RepositoryLayout.publish(snap, root: root, model: "vec", version: 7).version, 7)
        XCTAssertEqual(RepositoryLayout.versionsOnDisk(modelFolder: "\(root)/vec").map(\.version), [1, 2, 7])
        XCTAssertEqual(entries("\(root)/vec"), ["1", "2", "7"], "no staging folder left")
        XCTAssertEqual(
            try Snapshot.load(path: second.path).network.parameters.values.array, snap.network.parameters.values.array)
        XCTAssertThrowsError(try RepositoryLayout.publish(snap, root: root, model: "vec", version: 2)) {
            XCTAssertTrue("\($0)".contains("already exists"), "\($0)")
        }
        for bad in ["", ".hidden", "a/b"] {
            XCTAssertThrowsError(try RepositoryLayout.publish(snap, root: root, model: bad)) {
                XCTAssertTrue("\($0)".contains("model name"), "\($0)")
            }
        }
        XCTAssertEqual(entries(root), ["vec"])
    }

    func testPublishCommandChecksTheSnapshotFirst() throws {
        let (bin, _) = try DaemonProcess.binary()
        let root = try Fixtures.repository()
        let good = root + "/good.safetensors", bad = root + "/bad.safetensors"
        try Fixtures.imageGenerator().save(to: good)
        try Data("not a snapshot".utf8).write(to: URL(fileURLWithPath: bad))
        var (status, text) = try runCommand(
            bin, ["publish", "--model", "img", "--snapshot", good, "--repository", root])
        XCTAssertEqual(status, 0, text)
        XCTAssertTrue(text.contains("img version 1"), text)
        (status, text) = try runCommand(bin, ["publish", "--model", "img", "--snapshot", bad, "--repository", root])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(text.contains("not a snapshot that can be served"), text)
        (status, text) = try runCommand(
            bin, ["publish", "--model", "img", "--snapshot", good, "--repository", root, "--version", "1"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(text.contains("already exists"), text)
        XCTAssertEqual(entries(root + "/img"), ["1"], "refused publishes leave nothing behind")
    }
}

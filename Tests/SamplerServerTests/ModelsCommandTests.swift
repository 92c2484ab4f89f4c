import Diffusion
import Foundation
import ServingTestSupport
import XCTest

/// `onestep models` against a real daemon and `onestep publish` / `rollback` on its repository:
/// publish a version, load it, roll it back, unload and load the model, read its configuration.
final class ModelsCommandTests: XCTestCase {
    func testPublishLoadRollbackUnloadAndInfoEndToEnd() throws {
        let bin = try DaemonProcess.binary().0
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 1), root: root, name: "vec", version: 1)
        try Data(#"{"max_batch_size": 12}"#.utf8).write(to: URL(fileURLWithPath: "\(root)/vec/config.json"))
        let daemon = try DaemonProcess(root: root)
        let server = "127.0.0.1:\(daemon.grpcPort)"
        func run(_ args: [String]) throws -> String {
            let (status, text) = try runCommand(bin, args)
            XCTAssertEqual(status, 0, "\(args): \(text)")
            return text
        }
        func rows() throws -> [String] {
            try run(["models", "list", "--server", server]).split(separator: "\n").map(String.init)
                .filter { $0.hasPrefix("vec\t") }
        }
        XCTAssertEqual(try rows(), ["vec\t1\tREADY\t"])

        // Publish version 2 on disk; `models load` makes the daemon read the folder now.
        let snapshot = NSTemporaryDirectory() + "vec-\(UUID().uuidString).safetensors"
        try Fixtures.vectorGenerator(seed: 2).save(to: snapshot)
        _ = try run(["publish", "--model", "vec", "--snapshot", snapshot, "--repository", root])
        _ = try run(["models", "load", "--model", "vec", "--server", server])
        let published = try rows()
        XCTAssertTrue(published.contains("vec\t2\tREADY\t"), published.joined(separator: "\n"))

        let info = try run(["models", "info", "--model", "vec", "--server", server])
        XCTAssertTrue(info.contains("batching: max 12 samples"), info)
        XCTAssertTrue(info.contains("version policy: latest:1"), info)
        XCTAssertTrue(info.contains("version 2: 0 samples in 0 batches"), info)

        // Roll back: version 2 leaves the repository (kept aside); version 1 serves again.
        let rolled = try run(["rollback", "--model", "vec", "--repository", root])
        XCTAssertTrue(rolled.contains("version 2 moved to .2.rolled-back; version 1 is the newest"), rolled)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(root)/vec/.2.rolled-back/model.safetensors"))
        _ = try run(["models", "load", "--model", "vec", "--server", server])
        let after = try rows()
        XCTAssertTrue(after.contains("vec\t1\tREADY\t"), after.joined(separator: "\n"))
        XCTAssertFalse(after.contains { $0.hasPrefix("vec\t2\tREADY") }, after.joined(separator: "\n"))
        // Nothing left to roll back to: refused, the repository untouched.
        let (status, refusal) = try runCommand(bin, ["rollback", "--model", "vec", "--repository", root])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(refusal.contains("nothing to roll back to"), refusal)

        _ = try run(["models", "unload", "--model", "vec", "--server", server])
        let unloaded = try rows()
        XCTAssertFalse(unloaded.contains { $0.contains("READY") }, unloaded.joined(separator: "\n"))
        _ = try run(["models", "load", "--model", "vec", "--server", server])
        XCTAssertTrue(try rows().contains("vec\t1\tREADY\t"))
        // An unknown model is an error with the daemon's message.
        let (s2, unknown) = try runCommand(bin, ["models", "info", "--model", "nope", "--server", server])
        XCTAssertNotEqual(s2, 0)
        XCTAssertTrue(unknown.contains("unknown model 'nope'"), unknown)
        daemon.sigterm()
        XCTAssertEqual(daemon.waitForExit(timeout: 30), 0)
    }
}

import Foundation
import GRPCCore
import SamplerAPI
import ServingTestSupport
import XCTest

@testable import SamplerServer

/// One broken or half-copied model folder never takes the server out of service: it is reported on
/// its own health name and in RepositoryIndex with its reason, and the state follows the disk.
final class ReadinessIsolationTests: XCTestCase {
    static func truncatedModel(_ root: String, _ name: String) throws {
        let good = try Fixtures.repository()
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 9), root: good, name: name, version: 1)
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: "\(good)/\(name)/1/model.safetensors"))
        try FileManager.default.createDirectory(atPath: "\(root)/\(name)/1", withIntermediateDirectories: true)
        XCTAssertTrue(
            FileManager.default.createFile(
                atPath: "\(root)/\(name)/1/model.safetensors", contents: bytes.prefix(bytes.count / 2)))
    }

    /// The health of `service` once it reads `wanted` (polled for up to 5 s), or what it reads then.
    static func health(_ client: GRPCClient<some ClientTransport>, _ service: String, becomes wanted: String)
        async throws -> String
    {
        for _ in 0..<100 {
            if await health(client, service) == wanted { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        return await health(client, service)
    }

    static func health(_ client: GRPCClient<some ClientTransport>, _ service: String) async -> String {
        do {
            return
                "\(try await Grpc_Health_V1_Health.Client(wrapping: client).check(.with { $0.service = service }).status)"
        } catch let e as RPCError { return e.code == .notFound ? "notFound" : "error \(e.code)" } catch {
            return "\(error)"
        }
    }

    func testBrokenModelBesideAGoodOneLeavesTheServerReadyAndFollowsTheDisk() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 1), root: root, name: "vec", version: 1)
        // Present at start: the daemon must still become ready (a restart with the folder there).
        try Self.truncatedModel(root, "broken")
        let daemon = try DaemonProcess(root: root, arguments: ["--poll-seconds", "0.05"])
        try await daemon.withClient { client in
            let v2 = Inference_GRPCInferenceService.Client(wrapping: client)
            var index = try await v2.repositoryIndex(.init())
            for _ in 0..<100 where !index.models.contains(where: { $0.name == "broken" && $0.state == "UNAVAILABLE" }) {
                try await Task.sleep(for: .milliseconds(50))
                index = try await v2.repositoryIndex(.init())
            }
            let broken = try XCTUnwrap(index.models.first { $0.name == "broken" })
            XCTAssertEqual(broken.state, "UNAVAILABLE")
            XCTAssertFalse(broken.reason.isEmpty, "the index says why")
            var h = await Self.health(client, "")
            XCTAssertEqual(h, "serving", "the server is ready: the broken model was never required")
            var ready = try await v2.serverReady(.init()).ready
            XCTAssertTrue(ready)
            h = await Self.health(client, "broken")
            XCTAssertEqual(h, "notServing")
            h = await Self.health(client, "vec")
            XCTAssertEqual(h, "serving")
            let call = await DaemonTests.sample(client, model: "vec", seed: 1, count: 3)
            XCTAssertNil(call.code, call.message)

            // A half-copied model appearing while serving: still ready.
            try Self.truncatedModel(root, "half")
            try await Task.sleep(for: .milliseconds(500))
            h = await Self.health(client, "")
            XCTAssertEqual(h, "serving")
            ready = try await v2.serverReady(.init()).ready
            XCTAssertTrue(ready)

            // Folders removed: their health names and index entries go.
            try FileManager.default.removeItem(atPath: "\(root)/broken")
            try FileManager.default.removeItem(atPath: "\(root)/half")
            h = try await Self.health(client, "broken", becomes: "notFound")
            XCTAssertEqual(h, "notFound")
            // The two folders may go in different scans: wait for the second as well.
            _ = try await Self.health(client, "half", becomes: "notFound")
            index = try await v2.repositoryIndex(.init())
            XCTAssertEqual(Set(index.models.map(\.name)), ["vec"])

            // The good model's folder removed too: it is unloaded (nothing serves a deleted model).
            try FileManager.default.removeItem(atPath: "\(root)/vec")
            h = try await Self.health(client, "vec", becomes: "notFound")
            XCTAssertEqual(h, "notFound")
            let after = await DaemonTests.sample(client, model: "vec", seed: 1, count: 3)
            XCTAssertEqual(after.code, .notFound, after.message)
        }
        daemon.sigterm()
        _ = daemon.waitForExit(timeout: 30)
    }

    /// With `required_models`, the server is ready only when those are.
    func testRequiredModelsDecideReadiness() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 1), root: root, name: "vec", version: 1)
        try Self.truncatedModel(root, "broken")
        let config = "\(root)/config.json"
        XCTAssertTrue(
            FileManager.default.createFile(
                atPath: config, contents: Data(#"{"required_models": ["vec", "broken"]}"#.utf8)))
        let daemon = try DaemonProcess(root: root, arguments: ["--config", config])
        try await daemon.withClient { client in
            let ready = try await Inference_GRPCInferenceService.Client(wrapping: client).serverReady(.init()).ready
            XCTAssertFalse(ready, "a required model failed to load")
            let h = await Self.health(client, "")
            XCTAssertEqual(h, "notServing")
        }
        daemon.sigterm()
        _ = daemon.waitForExit(timeout: 30)
    }
}

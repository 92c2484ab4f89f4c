import Foundation
import ServingTestSupport
import TestSupport
import XCTest

/// Triton's log settings extension against a real daemon: tritonclient.grpc reads and changes them
/// (admin token), the change takes effect at once in the daemon's log, bad settings are refused
/// whole, and HTTP's `/v2/logging` reads the same values.
final class LogSettingsTests: XCTestCase {
    let token = "user-1", admin = "admin-2"

    func testTritonClientReadsAndChangesTheLogLevel() throws {
        let py = try servePython(probe: "import tritonclient.grpc")
        let root = try Fixtures.repository()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Fixtures.install(try Fixtures.imageGenerator(seed: 1), root: root, name: "img", version: 1)
        // DaemonProcess starts the daemon at --log-level warning.
        let d = try DaemonProcess(root: root, environment: ["ONESTEP_TOKEN": token, "ONESTEP_ADMIN_TOKEN": admin])
        defer {
            d.sigterm()
            _ = d.waitForExit(timeout: 20)
        }
        let script = """
            import json, sys
            import tritonclient.grpc as g
            from tritonclient.utils import InferenceServerException
            c = g.InferenceServerClient(sys.argv[1])
            def h(t): return {"authorization": "Bearer " + t}
            def call(f):
                try:
                    return f()
                except InferenceServerException as e:
                    return {"error": str(e)}
            out = {}
            out["user"] = call(lambda: c.get_log_settings(headers=h(sys.argv[2]), as_json=True))
            out["before"] = call(lambda: c.get_log_settings(headers=h(sys.argv[3]), as_json=True))
            out["bad"] = call(lambda: c.update_log_settings({"log_info": True, "log_file": "/tmp/x"},
                                                           headers=h(sys.argv[3]), as_json=True))
            out["unchanged"] = call(lambda: c.get_log_settings(headers=h(sys.argv[3]), as_json=True))
            out["after"] = call(lambda: c.update_log_settings({"log_info": True}, headers=h(sys.argv[3]),
                                                             as_json=True))
            c.unload_model("img", headers=h(sys.argv[3]))
            c.load_model("img", headers=h(sys.argv[3]))
            print(json.dumps(out))
            """
        let before = d.log
        let r = try runProcess(py, ["-c", script, "127.0.0.1:\(d.grpcPort)", token, admin])
        XCTAssertEqual(r.status, 0, r.output)
        let line = r.output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        let out = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
        func setting(_ phase: String, _ key: String) -> Any? {
            ((out[phase] as? [String: Any])?["settings"] as? [String: Any])?[key] as? [String: Any]
        }
        XCTAssertTrue("\(out["user"] ?? "")".contains("admin token"), "a user token cannot read them: \(out)")
        XCTAssertEqual((setting("before", "log_info") as? [String: Bool])?["bool_param"], false, "\(out)")
        XCTAssertEqual((setting("before", "log_warning") as? [String: Bool])?["bool_param"], true, "\(out)")
        XCTAssertTrue("\(out["bad"] ?? "")".contains("log_file"), "\(out)")
        XCTAssertEqual(
            (setting("unchanged", "log_info") as? [String: Bool])?["bool_param"], false,
            "a refused change changes nothing")
        XCTAssertEqual((setting("after", "log_info") as? [String: Bool])?["bool_param"], true, "\(out)")
        // Info lines now reach the log (the reload says so); none did before.
        XCTAssertFalse(before.contains("info"), before)
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertTrue(d.log.contains(" info "), d.log)

        // HTTP reads the same settings; it changes them with the admin token only.
        let base = "http://127.0.0.1:\(d.httpPort ?? 0)/v2/logging"
        let get = try runProcess(
            "/usr/bin/curl", ["-sS", "-H", "authorization: Bearer \(admin)", base])
        XCTAssertTrue(get.output.contains(#""log_info":true"#), get.output)
        let denied = try runProcess(
            "/usr/bin/curl",
            ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "authorization: Bearer \(token)", base])
        XCTAssertEqual(denied.output, "403")
        let post = try runProcess(
            "/usr/bin/curl",
            [
                "-sS", "-X", "POST", "-H", "authorization: Bearer \(admin)", "--data-binary",
                #"{"log_verbose_level": 1}"#, base,
            ])
        XCTAssertTrue(post.output.contains(#""log_verbose_level":1"#), post.output)
        let unknown = try runProcess(
            "/usr/bin/curl",
            [
                "-sS", "-X", "POST", "-H", "authorization: Bearer \(admin)", "--data-binary", #"{"log_colour": true}"#,
                base,
            ])
        XCTAssertTrue(unknown.output.contains("unknown log setting 'log_colour'"), unknown.output)
    }
}

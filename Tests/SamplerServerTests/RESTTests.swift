import Foundation
import ServingTestSupport
import TestSupport
import XCTest

/// The daemon's HTTP door, started for real on loopback: every route through curl (errors
/// included), Triton's tritonclient.http against tritonclient.grpc on the same daemon, the sample
/// routes against `onestep request` over gRPC, and the gallery page in headless Chromium.
final class RESTTests: XCTestCase {
    let token = "user-token-1", admin = "admin-token-2"

    func tempRoot() throws -> String {
        let root = try Fixtures.repository()
        addTeardownBlock { try? FileManager.default.removeItem(atPath: root) }
        return root
    }

    /// A daemon with one image generator `img`; with tokens unless `open`.
    func daemon(open: Bool = false, config: String? = nil) throws -> DaemonProcess {
        let root = try tempRoot()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 1), root: root, name: "img", version: 1)
        var arguments: [String] = []
        if let config {
            try Data(config.utf8).write(to: URL(fileURLWithPath: "\(root)/serve.json"))
            arguments += ["--config", "\(root)/serve.json"]
        }
        let d = try DaemonProcess(
            root: root, arguments: arguments,
            environment: open ? [:] : ["ONESTEP_TOKEN": token, "ONESTEP_ADMIN_TOKEN": admin])
        addTeardownBlock {
            d.sigterm()
            _ = d.waitForExit(timeout: 20)
        }
        XCTAssertNotNil(d.httpPort, "the daemon reported no HTTP port")
        return d
    }

    struct Reply {
        var status: Int
        var body: Data
        var headers: String
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
        var error: String? { json?["error"] as? String }
    }

    /// One request through curl: `method path`, optional body (a string or a file), bearer token.
    func curl(
        _ d: DaemonProcess, _ method: String, _ path: String, body: String? = nil, bodyFile: String? = nil,
        token: String? = nil, file: StaticString = #filePath, line: UInt = #line
    ) throws -> Reply {
        let out = NSTemporaryDirectory() + "curl-\(UUID().uuidString)"
        defer {
            try? FileManager.default.removeItem(atPath: out + ".body")
            try? FileManager.default.removeItem(atPath: out + ".head")
        }
        var args = [
            "-sS", "-X", method, "-o", out + ".body", "-D", out + ".head", "-w", "%{http_code}", "--max-time", "60",
            "http://127.0.0.1:\(d.httpPort ?? 0)\(path)",
        ]
        if let body { args += ["-H", "content-type: application/json", "--data-binary", body] }
        if let bodyFile { args += ["-H", "content-type: application/json", "--data-binary", "@" + bodyFile] }
        if let token { args += ["-H", "authorization: Bearer \(token)"] }
        let r = try runProcess("/usr/bin/curl", args)
        XCTAssertEqual(r.status, 0, "curl failed: \(r.output)", file: file, line: line)
        return Reply(
            status: Int(r.output.suffix(3)) ?? -1,
            body: FileManager.default.contents(atPath: out + ".body") ?? Data(),
            headers: (try? String(contentsOfFile: out + ".head", encoding: .utf8)) ?? "")
    }

    func assertError(
        _ r: Reply, _ status: Int, _ fragment: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(r.status, status, r.text, file: file, line: line)
        XCTAssertTrue(
            r.headers.lowercased().contains("content-type: application/json"), r.headers, file: file, line: line)
        XCTAssertTrue(
            r.error?.contains(fragment) == true, "error '\(r.text)' lacks '\(fragment)'", file: file, line: line)
    }

    static let infer = #"{"id":"a","inputs":[{"name":"seed","shape":[3],"datatype":"INT64","data":[1,2,3]}]}"#

    func testEveryRouteAndItsErrorsThroughCurl() throws {
        let d = try daemon(config: #"{"max_request_bytes": 65536}"#)
        // Health is open (probes carry no token).
        XCTAssertEqual(try curl(d, "GET", "/v2/health/live").status, 200)
        let ready = try curl(d, "GET", "/v2/health/ready")
        XCTAssertEqual(ready.status, 200, ready.text)
        XCTAssertEqual(ready.json?["ready"] as? Bool, true)
        // Everything else needs the token.
        assertError(try curl(d, "GET", "/v2"), 401, "bearer token")
        XCTAssertTrue(try curl(d, "GET", "/v2").headers.lowercased().contains("www-authenticate: bearer"))
        assertError(try curl(d, "GET", "/v2", token: "wrong"), 401, "bearer token")
        assertError(try curl(d, "POST", "/v2/models/img/infer", body: Self.infer), 401, "bearer token")
        assertError(try curl(d, "GET", "/v1/models/img/samples.png"), 401, "bearer token")

        let meta = try curl(d, "GET", "/v2", token: token)
        XCTAssertEqual(meta.status, 200)
        XCTAssertEqual(meta.json?["name"] as? String, "onestep")
        for path in ["/v2/models/img", "/v2/models/img/versions/1"] {
            let m = try curl(d, "GET", path, token: token)
            XCTAssertEqual(m.status, 200, m.text)
            XCTAssertEqual(m.json?["versions"] as? [String], ["1"])
            let outputs = m.json?["outputs"] as? [[String: Any]]
            XCTAssertEqual(outputs?.first?["shape"] as? [Int], [-1, 1, 8, 8], m.text)
        }
        for path in ["/v2/models/img/ready", "/v2/models/img/versions/1/ready"] {
            XCTAssertEqual(try curl(d, "GET", path, token: token).status, 200)
        }
        XCTAssertEqual(try curl(d, "GET", "/v2/models/img/versions/9/ready", token: token).status, 503)
        let config = try curl(d, "GET", "/v2/models/img/config", token: token)
        XCTAssertEqual(config.status, 200, config.text)
        XCTAssertEqual(config.json?["max_batch_size"] as? Int, 64, config.text)

        // Inference: JSON in, JSON out; the seeds echoed; id echoed.
        let r = try curl(d, "POST", "/v2/models/img/infer", body: Self.infer, token: token)
        XCTAssertEqual(r.status, 200, r.text)
        XCTAssertEqual(r.json?["id"] as? String, "a")
        XCTAssertEqual(r.json?["model_version"] as? String, "1")
        let outputs = r.json?["outputs"] as? [[String: Any]] ?? []
        XCTAssertEqual(outputs.map { $0["name"] as? String }, ["sample", "seed"])
        XCTAssertEqual(outputs.first?["shape"] as? [Int], [3, 1, 8, 8])
        XCTAssertEqual((outputs.first?["data"] as? [Double])?.count, 3 * 64)
        XCTAssertEqual(outputs.last?["data"] as? [Int], [1, 2, 3])

        // Errors, each with its status and a message that says what is wrong.
        assertError(
            try curl(d, "POST", "/v2/models/nope/infer", body: Self.infer, token: token), 404, "'nope'")
        assertError(try curl(d, "GET", "/v2/models/nope", token: token), 404, "'nope'")
        assertError(try curl(d, "POST", "/v2/models/img/infer", body: "{not json", token: token), 400, "not valid JSON")
        assertError(
            try curl(d, "POST", "/v2/models/img/infer", body: #"{"inputs":[{"name":"seed"}]}"#, token: token), 400,
            "missing key 'inputs[0].shape'")
        assertError(
            try curl(
                d, "POST", "/v2/models/img/infer",
                body: #"{"inputs":[{"name":"seed","shape":[2],"datatype":"FP32","data":[1.5,2]}]}"#, token: token),
            400, "it must be INT64")
        assertError(
            try curl(
                d, "POST", "/v2/models/img/infer",
                body: #"{"inputs":[{"name":"seed","shape":[2],"datatype":"INT64","data":[1.5,2]}]}"#, token: token),
            400, "must be integers")
        assertError(
            try curl(
                d, "POST", "/v2/models/img/infer",
                body: #"{"inputs":[{"name":"seed","shape":[4],"datatype":"INT64","data":[1,2]}]}"#, token: token),
            400, "needs 4")
        assertError(
            try curl(
                d, "POST", "/v2/models/img/infer",
                body:
                    #"{"inputs":[{"name":"seed","shape":[9223372036854775807],"datatype":"INT64","data":[1]}]}"#,
                token: token), 400, "the limit is")
        assertError(
            try curl(
                d, "POST", "/v2/models/img/infer",
                body:
                    #"{"inputs":[{"name":"seed","shape":[1],"datatype":"INT64","parameters":{"binary_data_size":9223372036854775807}}]}"#,
                token: token), 400, "binary_data_size")
        // An output named twice would encode the whole result once per entry.
        assertError(
            try curl(
                d, "POST", "/v2/models/img/infer",
                body:
                    #"{"inputs":[{"name":"seed","shape":[1],"datatype":"INT64","data":[1]}],"outputs":[{"name":"sample"},{"name":"sample"}]}"#,
                token: token), 400, "more than once")
        assertError(try curl(d, "GET", "/v2/nothing/here", token: token), 404, "no route")
        assertError(try curl(d, "GET", "/v1/models/img/samples.png?seed=abc", token: token), 400, "'seed'")
        assertError(try curl(d, "GET", "/v1/models/img/samples.png?count=100000", token: token), 400, "limit")

        // A body over max_request_bytes: 413, before any of it is parsed.
        let big = NSTemporaryDirectory() + "big-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: big) }
        try Data(repeating: UInt8(ascii: " "), count: 200_000).write(to: URL(fileURLWithPath: big))
        assertError(try curl(d, "POST", "/v2/models/img/infer", bodyFile: big, token: token), 413, "limit")

        // Repository: index with the user token; load and unload need the admin token.
        let index = try curl(d, "POST", "/v2/repository/index", body: #"{"ready": true}"#, token: token)
        XCTAssertEqual(index.status, 200, index.text)
        let entries = (try? JSONSerialization.jsonObject(with: index.body)) as? [[String: Any]]
        XCTAssertEqual(entries?.first?["name"] as? String, "img", index.text)
        XCTAssertEqual(entries?.first?["state"] as? String, "READY", index.text)
        assertError(try curl(d, "POST", "/v2/repository/models/img/load", token: token), 403, "admin token")
        assertError(try curl(d, "POST", "/v2/repository/models/img/unload"), 401, "admin token")
        // The router skips empty segments, so these spellings reach the same admin routes and need
        // the same token.
        for path in [
            "/v2/repository/models/img/unload/", "/v2//repository/models/img/unload",
            "//v2/repository//models/img//load", "/v2/logging/", "/v2//logging",
        ] {
            assertError(try curl(d, "POST", path, body: "{}", token: token), 403, "admin token")
            assertError(try curl(d, "POST", path, body: "{}"), 401, "admin token")
        }
        XCTAssertEqual(try curl(d, "GET", "/v2/models/img/ready", token: token).status, 200, "still loaded")
        XCTAssertEqual(try curl(d, "POST", "/v2/repository/models/img/unload", token: admin).status, 200)
        XCTAssertEqual(try curl(d, "GET", "/v2/models/img/ready", token: token).status, 503)
        assertError(try curl(d, "POST", "/v2/repository/models/nope/load", token: admin), 404, "nope")
        XCTAssertEqual(try curl(d, "POST", "/v2/repository/models/img/load", token: admin).status, 200)

        // Still answering after all of that.
        XCTAssertEqual(try curl(d, "GET", "/v2/health/ready").status, 200)
        XCTAssertEqual(try curl(d, "POST", "/v2/models/img/infer", body: Self.infer, token: token).status, 200)
        XCTAssertTrue(d.process.isRunning)
    }

    /// Every HTTP request, refused ones included, is counted by route template, method and status,
    /// timed, and written to the access log (health probes counted, not logged); unknown paths
    /// share one `NotFound` label.
    func testEveryRequestIsCountedTimedAndLogged() throws {
        let root = try tempRoot()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 1), root: root, name: "img", version: 1)
        let d = try DaemonProcess(
            root: root, arguments: ["--log-level", "info"], environment: ["ONESTEP_TOKEN": token])
        addTeardownBlock {
            d.sigterm()
            _ = d.waitForExit(timeout: 20)
        }
        XCTAssertEqual(try curl(d, "POST", "/v2/models/img/infer", body: Self.infer, token: token).status, 200)
        XCTAssertEqual(try curl(d, "POST", "/v2/models/img/infer", body: Self.infer).status, 401)
        XCTAssertEqual(try curl(d, "POST", "/v2/models/nope/infer", body: Self.infer, token: token).status, 404)
        for i in 0..<3 { XCTAssertEqual(try curl(d, "GET", "/v2/no/such/route/\(i)", token: token).status, 404) }
        XCTAssertEqual(try curl(d, "GET", "/v2/health/live").status, 200)
        XCTAssertEqual(try curl(d, "GET", "/v1/stats", token: token).status, 200)
        XCTAssertEqual(try curl(d, "GET", "/v1/models/img/samples.png?seed=1&count=2", token: token).status, 200)
        XCTAssertGreaterThanOrEqual(try curl(d, "PROPFIND", "/v2/webdav", token: token).status, 400)

        let page = try scrapeMetrics(d)
        XCTAssertEqual(
            metricValue(page, "onestep_http_requests_total", labels: ["method=\"OTHER\""]), 1,
            "a method outside the standard set counts as OTHER\n\(page)")
        XCTAssertFalse(page.contains("PROPFIND"), "a client's method became a label")
        let infer = "route=\"/v2/models/{model}/infer\""
        XCTAssertEqual(
            metricValue(page, "onestep_http_requests_total", labels: [infer, "method=\"POST\"", "code=\"200\""]), 1,
            page)
        XCTAssertEqual(metricValue(page, "onestep_http_requests_total", labels: [infer, "code=\"401\""]), 1, page)
        XCTAssertEqual(metricValue(page, "onestep_http_requests_total", labels: [infer, "code=\"404\""]), 1, page)
        XCTAssertEqual(
            metricValue(
                page, "onestep_http_requests_total", labels: ["route=\"NotFound\"", "method=\"GET\"", "code=\"404\""]),
            3,
            "three unknown paths, one label set\n\(page)")
        XCTAssertFalse(page.contains("/v2/no/such/route"), "a client's path became a label")
        for family in ["onestep_http_requests_total", "onestep_http_request_duration_seconds"] {
            XCTAssertTrue(page.contains("# HELP \(family) "), "no HELP for \(family)")
        }
        XCTAssertEqual(metricValue(page, "onestep_http_request_duration_seconds_count", labels: [infer]), 3, page)
        XCTAssertEqual(
            metricValue(page, "onestep_http_requests_total", labels: ["route=\"/v2/health/live\"", "code=\"200\""]), 1,
            page)

        let lines = d.log.split(separator: "\n").filter { $0.contains("http") && $0.contains("path=") }
        let inferLines = lines.filter { $0.contains("path=/v2/models/img/infer") }
        XCTAssertEqual(inferLines.count, 2, d.log)
        let ok = try XCTUnwrap(inferLines.first { $0.contains("code=200") }, d.log)
        for field in [
            "method=POST", "ms=", "peer=ipv4:127.0.0.1:", "model=img", "version=1", "samples=3", "compute_ms=",
        ] {
            XCTAssertTrue(ok.contains(field), "\(field) missing: \(ok)")
        }
        XCTAssertTrue(inferLines.contains { $0.contains("code=401") }, d.log)
        XCTAssertEqual(
            lines.filter { $0.contains("path=/v2/no/such/route/") && $0.contains("code=404") }.count, 3, d.log)
        XCTAssertTrue(
            lines.contains { $0.contains("method=PROPFIND") && $0.contains("path=/v2/webdav") },
            "the log keeps the method the metric calls OTHER\n\(d.log)")
        XCTAssertFalse(d.log.contains("path=/v2/health/live"), "probes are not logged")
        XCTAssertFalse(d.log.contains("path=/v1/stats"), "the gallery's stats poll is not logged")
        XCTAssertEqual(
            metricValue(page, "onestep_http_requests_total", labels: ["route=\"/v1/stats\"", "code=\"200\""]), 1, page)
        let png = try XCTUnwrap(lines.first { $0.contains("path=/v1/models/img/samples.png") }, d.log)
        for field in ["code=200", "model=img", "samples=2"] {
            XCTAssertTrue(png.contains(field), "\(field) missing: \(png)")
        }
    }

    /// `samples.png` / `samples.npy` are byte for byte what `onestep request` writes from the
    /// Sampler API over gRPC for the same seed and count; the stats count the requests.
    func testSampleRoutesEqualTheSamplerAPI() throws {
        let d = try daemon(open: true)
        let bin = try DaemonProcess.binary().0
        let out = try tempRoot()
        for format in ["png", "npy"] {
            let r = try curl(d, "GET", "/v1/models/img/samples.\(format)?seed=77&count=6&columns=3")
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertTrue(r.headers.lowercased().contains("x-onestep-model-version: 1"), r.headers)
            let file = "\(out)/ref.\(format)"
            let c = try runProcess(
                bin,
                [
                    "request", "--server", "127.0.0.1:\(d.grpcPort)", "--model", "img", "--seed", "77", "--count",
                    "6", "--columns", "3", "--format", format, "--out", file,
                ])
            XCTAssertEqual(c.status, 0, c.output)
            XCTAssertEqual(r.body, FileManager.default.contents(atPath: file), "\(format): HTTP and gRPC differ")
        }
        let png = try curl(d, "GET", "/v1/models/img/samples.png?seed=1&count=16")
        XCTAssertTrue(png.headers.lowercased().contains("content-type: image/png"))
        // 4 x 4 tiles of 8 pixels with 2-pixel gaps.
        XCTAssertEqual(Array(png.body[16..<24]), [0, 0, 0, 42, 0, 0, 0, 42], "PNG width and height")
        let stats = try curl(d, "GET", "/v1/stats")
        let model = (stats.json?["models"] as? [[String: Any]])?.first { $0["name"] as? String == "img" }
        // Both doors: 2 + 1 over HTTP, 2 over gRPC.
        XCTAssertEqual(model?["success"] as? Int, 5, stats.text)
        XCTAssertNotNil(model?["p99_ms"] as? Double, stats.text)
        let models = try curl(d, "GET", "/v1/models")
        let versions = (models.json?["models"] as? [[String: Any]])?.first?["versions"] as? [[String: Any]]
        XCTAssertEqual(versions?.first?["sample_shape"] as? [Int], [1, 8, 8], models.text)
    }

    /// `onestep loadtest --http` drives the REST door: requests succeed; a wrong token is counted
    /// as HTTP 401 failures, not a crash.
    func testLoadtestOverHTTP() throws {
        let d = try daemon()
        let bin = try DaemonProcess.binary().0
        let dir = try tempRoot()
        for (file, value) in [("good", token), ("bad", "wrong")] {
            try Data(value.utf8).write(to: URL(fileURLWithPath: "\(dir)/\(file)"))
        }
        func run(_ tokenFile: String) throws -> [String: Any] {
            let r = try runProcess(
                bin,
                [
                    "loadtest", "--http", "http://127.0.0.1:\(d.httpPort ?? 0)", "--model", "img", "--count", "4",
                    "--concurrency", "4", "--duration", "1", "--warmup", "0.2", "--token-file", tokenFile, "--json",
                ])
            XCTAssertEqual(r.status, 0, r.output)
            let line = r.output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
            return (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
        }
        let good = try run("\(dir)/good")
        XCTAssertGreaterThan(good["ok"] as? Int ?? 0, 0, "\(good)")
        XCTAssertEqual((good["failures"] as? [String: Int])?.values.reduce(0, +) ?? 0, 0, "\(good)")
        let bad = try run("\(dir)/bad")
        XCTAssertEqual(bad["ok"] as? Int, 0, "\(bad)")
        XCTAssertGreaterThan((bad["failures"] as? [String: Int])?["HTTP 401"] ?? 0, 0, "\(bad)")
    }

    func testTritonClientHTTPMatchesGRPC() throws {
        let py = try servePython(probe: "import tritonclient.http, tritonclient.grpc, numpy")
        let d = try daemon()
        let r = try runProcess(
            py,
            [
                packageRoot + "/clients/python/tests/http_test.py", "--http", "127.0.0.1:\(d.httpPort ?? 0)", "--grpc",
                "127.0.0.1:\(d.grpcPort)", "--model", "img", "--token", token,
            ])
        print(r.output)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("http_test: ok"), r.output)
    }

    /// Headless Chromium opens the gallery (token given in the page address), waits for the grid,
    /// checks its size and that it is not blank, clicks "next seed" and sees a new image, and
    /// saves a screenshot under .build/test-output/gallery.
    func testGalleryInHeadlessChromium() throws {
        let py = try servePython(probe: "import selenium")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver") else {
            return XCTFail("Debian's chromium and chromium-driver are missing (make deps installs them)")
        }
        let d = try daemon()
        let out = packageRoot + "/.build/test-output/gallery"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let r = try runProcess(
            py,
            [
                packageRoot + "/clients/python/tests/browser_gallery.py", "--url",
                "http://127.0.0.1:\(d.httpPort ?? 0)/",
                "--token", token, "--model", "img", "--expect-size", "42x42", "--out", out, "--timeout", "90",
            ])
        print(r.output)
        XCTAssertEqual(r.status, 0, r.output)
        print("gallery screenshot: \(out)/gallery.png")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/gallery.png"))
    }
}

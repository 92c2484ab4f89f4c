import Foundation
import GRPCCore
import SamplerAPI
import ServingTestSupport
import XCTest

@testable import SamplerServer

/// Every RPC, refused ones included, is counted by method and status, timed end to end, and
/// written to the access log (rate-limited); health checks are counted but not logged.
final class RequestObserverTests: XCTestCase {
    func testEveryCallIsCountedTimedAndLogged() async throws {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 1), root: root, name: "vec", version: 1)
        // One instance: the good call's two samples are one batch (with more, the batcher shares
        // them out over the instances).
        let daemon = try DaemonProcess(root: root, arguments: ["--log-level", "info", "--instances", "1"])
        try await daemon.withClient { client in
            let good = await DaemonTests.sample(client, model: "vec", seed: 1, count: 2)
            XCTAssertNil(good.code, good.message)
            for _ in 0..<2 {
                let missing = await DaemonTests.sample(client, model: "no-such-model", seed: 1, count: 2)
                XCTAssertEqual(missing.code, .notFound)
            }
            let tooMany = await DaemonTests.sample(client, model: "vec", seed: 1, count: 1_000_000)
            XCTAssertEqual(tooMany.code, .invalidArgument, tooMany.message)
            _ = await ReadinessIsolationTests.health(client, "")
        }
        let page = try scrapeMetrics(daemon)
        let sample = "method=\"onestep.sampler.v1.Sampler/Sample\""
        XCTAssertEqual(metricValue(page, "onestep_grpc_requests_total", labels: [sample, "code=\"ok\""]), 1, page)
        XCTAssertEqual(
            metricValue(page, "onestep_grpc_requests_total", labels: [sample, "code=\"notFound\""]), 2, page)
        XCTAssertEqual(
            metricValue(page, "onestep_grpc_requests_total", labels: [sample, "code=\"invalidArgument\""]), 1, page)
        XCTAssertEqual(metricValue(page, "onestep_grpc_request_duration_seconds_count", labels: [sample]), 4, page)
        XCTAssertEqual(
            metricValue(page, "onestep_grpc_requests_total", labels: ["grpc.health.v1.Health/Check", "code=\"ok\""]), 1,
            page)
        let lines = daemon.log.split(separator: "\n").filter {
            $0.contains("rpc") && $0.contains("method=onestep.sampler.v1.Sampler/Sample")
        }
        XCTAssertEqual(lines.count, 4, daemon.log)
        XCTAssertEqual(lines.filter { $0.contains("code=notFound") }.count, 2, daemon.log)
        XCTAssertTrue(lines.allSatisfy { $0.contains("peer=") && $0.contains("ms=") }, daemon.log)
        // The good call's line names what it sampled and where the time went.
        let ok = try XCTUnwrap(lines.first { $0.contains("code=ok") }, daemon.log)
        for field in ["model=vec", "version=1", "samples=2", "queue_ms=", "compute_ms="] {
            XCTAssertTrue(ok.contains(field), "\(field) missing: \(ok)")
        }
        XCTAssertFalse(daemon.log.contains("method=grpc.health.v1.Health/Check"), "probes are not logged")

        // Per lane: the batch-size histogram and the pending samples; the process from /proc.
        XCTAssertEqual(
            metricValue(page, "onestep_batch_size_sum", labels: ["model=\"vec\""]), 2,
            "one batch, the good call's (warm-up runs outside the lane)\n\(page)")
        XCTAssertEqual(metricValue(page, "onestep_batch_size_count", labels: ["model=\"vec\""]), 1, page)
        XCTAssertEqual(
            metricValue(page, "onestep_batch_size_bucket", labels: ["model=\"vec\"", "le=\"2.0\""]), 1, page)
        XCTAssertEqual(metricValue(page, "onestep_pending_samples", labels: ["model=\"vec\""]), 0, page)
        let rss = try XCTUnwrap(metricValue(page, "process_resident_memory_bytes"), page)
        let kib = try XCTUnwrap(daemon.rssKiB)
        XCTAssertEqual(rss / 1024, Double(kib), accuracy: Double(kib) * 0.5, "RSS from /proc/self/stat near VmRSS")
        XCTAssertGreaterThan(try XCTUnwrap(metricValue(page, "process_open_fds")), 3)
        XCTAssertGreaterThan(try XCTUnwrap(metricValue(page, "process_cpu_seconds_total")), 0)
        XCTAssertGreaterThan(try XCTUnwrap(metricValue(page, "process_threads")), 1)
        let start = try XCTUnwrap(metricValue(page, "process_start_time_seconds"))
        XCTAssertEqual(start, Date().timeIntervalSince1970, accuracy: 120)

        // Every family on the page has HELP text, right before its TYPE line (exposition format).
        let pageLines = page.split(separator: "\n")
        let types = pageLines.indices.filter { pageLines[$0].hasPrefix("# TYPE ") }
        XCTAssertGreaterThanOrEqual(types.count, 15, page)
        for i in types {
            let name = pageLines[i].dropFirst(7).prefix { $0 != " " }
            XCTAssertTrue(
                i > 0 && pageLines[i - 1].hasPrefix("# HELP \(name) ")
                    && pageLines[i - 1].count > "# HELP \(name) ".count + 5,
                "no HELP for \(name)")
        }
        XCTAssertTrue(
            page.contains("# HELP onestep_batch_size Samples per batch run.\n# TYPE onestep_batch_size histogram"), page
        )
    }

    func testHelpLinesGoBeforeTypeLinesOnce() {
        let page =
            "# TYPE onestep_samples_total counter\nonestep_samples_total 3\n# HELP x own\n# TYPE x gauge\nx 1\n# TYPE y gauge\ny 2\n"
        let annotated = String(decoding: MetricHelp.annotate(Array(page.utf8)), as: UTF8.self)
        XCTAssertEqual(
            annotated, "# HELP onestep_samples_total Samples computed.\n" + page,
            "known names gain HELP; unknown or annotated ones are kept")
        XCTAssertEqual(MetricHelp.annotate([]), [])
    }

    /// A client's path in the HTTP access log: printable ASCII kept, everything else escaped,
    /// at most 200 scalars (combining marks count one each), so no line is forged or bloated.
    func testHTTPPathsAreEscapedAndCutInTheAccessLog() {
        typealias Observer = RESTObserver<RESTContext>
        XCTAssertEqual(Observer.printable("/v2/models/img/infer"), "/v2/models/img/infer")
        XCTAssertEqual(Observer.printable("/a\nb\u{7F}\\c"), "/a\\u{a}b\\u{7f}\\u{5c}c")
        XCTAssertEqual(Observer.printable("/\u{85}\u{2028}\u{202E}é"), "/\\u{85}\\u{2028}\\u{202e}\\u{e9}")
        let marks = "/e" + String(repeating: "\u{301}", count: 5000)
        XCTAssertEqual(marks.count, 2, "one grapheme cluster after the slash")
        let cut = Observer.printable(marks)
        XCTAssertTrue(cut.hasSuffix("..."), cut)
        XCTAssertEqual(cut.components(separatedBy: "\\u{301}").count - 1, 198, "200 scalars: '/', 'e' and 198 marks")
        XCTAssertEqual(
            Observer.printable(String(repeating: "a", count: 500)), String(repeating: "a", count: 200) + "...")
        XCTAssertTrue(Observer.quiet("/v2/health/ready"))
        XCTAssertTrue(Observer.quiet("/v1/stats"))
        XCTAssertFalse(Observer.quiet("/v2/models/{model}/infer"))
    }

    func testHTTPMethodLabelsStayBounded() {
        typealias Observer = RESTObserver<RESTContext>
        for name in ["GET", "HEAD", "POST", "OPTIONS"] { XCTAssertEqual(Observer.methodLabel(name), name) }
        // llhttp accepts the WebDAV methods (and more); each would otherwise be a new series.
        for name in ["PROPFIND", "MKCOL", "SEARCH", "X-ANYTHING"] {
            XCTAssertEqual(Observer.methodLabel(name), "OTHER", name)
        }
    }

    func testAccessLogLimiterCountsTheLinesOverTheRate() {
        let limiter = AccessLogLimiter(perSecond: 3)
        XCTAssertEqual((0..<5).map { _ in limiter.admit(now: 100.1) }, [0, 0, 0, nil, nil])
        XCTAssertEqual(limiter.admit(now: 100.9), nil)
        XCTAssertEqual(limiter.admit(now: 101.0), 3, "the next second's first line reports the 3 dropped")
        XCTAssertEqual(limiter.admit(now: 101.2), 0)
    }
}

import Foundation
import GRPCCore
import SamplerClient
import ServingTestSupport
import XCTest

/// TLS end to end: the real daemon with a certificate, `SamplerClient` trusting that certificate.
final class TLSTests: XCTestCase {
    /// A self-signed certificate for 127.0.0.1/localhost made by the openssl CLI (skips without it).
    static func makeCertificate(in dir: String) throws -> (cert: String, key: String) {
        let cert = "\(dir)/cert.pem", key = "\(dir)/key.pem"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { throw XCTSkip("openssl is not available: \(error)") }
        p.waitUntilExit()
        guard p.terminationStatus == 0, FileManager.default.fileExists(atPath: cert) else {
            throw XCTSkip("openssl could not make a certificate")
        }
        return (cert, key)
    }

    func testTLSDaemonServesTrustingClientsAndRefusesOthers() async throws {
        let root = try Fixtures.repository()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 2), root: root, name: "vec", version: 1)
        let (cert, key) = try Self.makeCertificate(in: root)
        let daemon = try DaemonProcess(
            root: root, arguments: ["--tls-certificate-chain", cert, "--tls-private-key", key])
        let endpoint = SamplerEndpoint(host: "127.0.0.1", port: daemon.grpcPort)
        let once = RetryPolicy.none

        let r = try await SamplerClient.with(
            .init(endpoints: [endpoint], timeout: .seconds(20), retry: once, trustRoots: cert)
        ) { c in
            try await c.sample(
                .with {
                    $0.model = "vec"; $0.count = 3; $0.seed = 4
                })
        }
        XCTAssertEqual(r.ids.count, 3)
        XCTAssertEqual(r.floats.count, 6)

        // A plaintext client cannot talk to the TLS port; a TLS client that does not trust the
        // self-signed certificate (system roots) is refused in the handshake.
        for (what, config) in [
            ("plaintext", SamplerClient.Configuration(endpoints: [endpoint], timeout: .seconds(5), retry: once)),
            (
                "untrusted",
                SamplerClient.Configuration(endpoints: [endpoint], timeout: .seconds(5), retry: once, tls: true)
            ),
        ] {
            do {
                _ = try await SamplerClient.with(config) { c in
                    try await c.sample(
                        .with {
                            $0.model = "vec"; $0.count = 1
                        })
                }
                XCTFail("\(what) client got samples from the TLS daemon")
            } catch let e as RPCError {
                XCTAssertTrue([.unavailable, .deadlineExceeded].contains(e.code), "\(what): \(e)")
            }
        }
        // The HTTP door speaks TLS with the same certificate: curl trusting it gets an answer; curl
        // with the system roots is refused in the handshake, plain HTTP gets no answer.
        let url = "https://127.0.0.1:\(daemon.httpPort ?? 0)/v2/health/ready"
        let trusted = try Self.curl(["--cacert", cert, url])
        XCTAssertEqual(trusted.status, 0, trusted.output)
        XCTAssertTrue(trusted.output.hasSuffix("200"), trusted.output)
        XCTAssertEqual(try Self.curl([url]).status, 60, "curl without the certificate: SSL certificate problem")
        XCTAssertNotEqual(try Self.curl(["http://127.0.0.1:\(daemon.httpPort ?? 0)/v2/health/ready"]).output, "200")
        daemon.sigterm()
        XCTAssertEqual(daemon.waitForExit(timeout: 20), 0, daemon.log)
    }

    static func curl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"] + arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }
}

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
        daemon.sigterm()
        XCTAssertEqual(daemon.waitForExit(timeout: 20), 0, daemon.log)
    }
}

import Foundation
import TensorCore
import TestSupport
import XCTest

@testable import Training

/// Repository root, found from this file's path (Tests/TrainingTests/DataTests.swift).
private let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()
private let digitsDir = repoRoot + "/Tests/Data/digits"
private let dataDir = ProcessInfo.processInfo.environment["ONESTEP_DATA_DIR"] ?? repoRoot + "/data"

private func makeTempDir() throws -> String {
    let dir = NSTemporaryDirectory() + "onestep-data-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// Runs the system python3 (the fetch script needs nothing but the standard library).
private func runPython(_ args: [String]) throws -> (status: Int32, output: String) {
    try runProcess("/usr/bin/env", ["python3"] + args, in: repoRoot)
}

final class IDXTests: XCTestCase {
    func testRoundTrip() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = (0..<(3 * 4 * 5)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let path = dir + "/x-idx3-ubyte"
        try IDX.write(path: path, shape: [3, 4, 5], bytes: bytes)
        let raw = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(Array(raw[0..<8]), [0, 0, 8, 3, 0, 0, 0, 3])
        XCTAssertEqual(raw.count, 4 + 12 + 60)
        let back = try IDX.read(path: path)
        XCTAssertEqual(back.shape, [3, 4, 5])
        XCTAssertEqual(back.bytes, bytes)
    }

    func testCorruptHeadersAreRefused() throws {
        let good = try IDX.encode(shape: [2, 3], bytes: [1, 2, 3, 4, 5, 6])
        func expectCorrupt(_ data: [UInt8], _ fragment: String, line: UInt = #line) {
            XCTAssertThrowsError(try IDX.parse(data, what: "f"), line: line) { e in
                guard let t = e as? TrainingError else { return XCTFail("\(e)", line: line) }
                XCTAssertEqual(t.code, .dataCorrupt, line: line)
                XCTAssertTrue(t.message.contains(fragment), "\(t.message)", line: line)
            }
        }
        var bad = good; bad[0] = 1
        expectCorrupt(bad, "not an IDX file")
        bad = good; bad[2] = 0x0D  // float32
        expectCorrupt(bad, "element type 0xd")
        bad = good; bad[3] = 0
        expectCorrupt(bad, "0 dimensions")
        expectCorrupt(Array(good.dropLast()), "needs 6 data bytes, file has 5")
        expectCorrupt(good + [0], "needs 6 data bytes, file has 7")
        expectCorrupt([0, 0, 8], "too short")
        expectCorrupt([0, 0, 8, 3, 0, 0], "too short")
        bad = good; bad[4] = 0xFF; bad[8] = 0xFF  // dims 0xFF000002 x 0xFF000003: overflow, no huge alloc
        expectCorrupt(bad, "too large")
        XCTAssertThrowsError(try IDX.encode(shape: [2, 2], bytes: [1, 2, 3]))
    }

    func testMissingFileIsDataMissing() {
        XCTAssertThrowsError(try IDX.read(path: "/nonexistent/x-ubyte")) { e in
            XCTAssertEqual((e as? TrainingError)?.code, .dataMissing)
        }
    }
}

final class DatasetTests: XCTestCase {
    func testDigitsLoad() throws {
        let ds = try ImageDataset.load(name: "digits", split: .train, dataDir: repoRoot + "/Tests/Data")
        XCTAssertEqual(ds.count, 1797)
        XCTAssertEqual(ds.imageShape, [1, 8, 8])
        XCTAssertEqual(ds.vectorDim, 64)
        XCTAssertEqual(ds.images.count, 1797 * 64)
        let hist = ds.classHistogram()
        XCTAssertEqual(hist.count, 10)
        XCTAssertTrue(hist.allSatisfy { $0 >= 170 && $0 <= 190 }, "\(hist)")
        XCTAssertEqual(ds.images.min(), -1)
        XCTAssertEqual(ds.images.max(), 1)
        // First row of digits.csv.gz: 0,0,5,13,9,1,0,0 -> x/16*2-1; label 0.
        XCTAssertEqual(Array(ds.images[0..<8]), [0, 0, 5, 13, 9, 1, 0, 0].map { Float($0) / 16 * 2 - 1 })
        XCTAssertEqual(ds.labels[0], 0)
        XCTAssertEqual(ds.labels[1], 1)
        let (x, y) = try ds.batch([1, 0], flat: true)
        XCTAssertEqual(x.shape, [2, 64])
        XCTAssertEqual(y, [1, 0])
        XCTAssertEqual(Array(x.storage[64..<128]), Array(ds.images[0..<64]))
        XCTAssertEqual(try ds.batch([3]).images.shape, [1, 1, 8, 8])
        XCTAssertThrowsError(try ds.batch([1797]))
        // No test split for digits; clear errors for unknown names.
        XCTAssertThrowsError(try ImageDataset.load(name: "digits", split: .test, dataDir: repoRoot + "/Tests/Data"))
        XCTAssertThrowsError(try ImageDataset.load(name: "cifar", split: .train)) { e in
            XCTAssertEqual((e as? TrainingError)?.code, .invalidConfig)
        }
    }

    func testMissingDataSaysMakeData() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try ImageDataset.load(name: "mnist", split: .train, dataDir: dir)) { e in
            let t = e as? TrainingError
            XCTAssertEqual(t?.code, .dataMissing)
            XCTAssertEqual(t?.message, "MNIST not found at \(dir)/mnist/train-images-idx3-ubyte: run `make data`")
        }
    }

    func testCorruptDataIsRefused() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/fashion", withIntermediateDirectories: true)
        try IDX.write(
            path: dir + "/fashion/t10k-images-idx3-ubyte", shape: [2, 2, 2], bytes: [0, 1, 2, 3, 4, 5, 6, 7])
        // Label 10 is out of range.
        try IDX.write(path: dir + "/fashion/t10k-labels-idx1-ubyte", shape: [2], bytes: [3, 10])
        XCTAssertThrowsError(try ImageDataset.load(name: "fashion", split: .test, dataDir: dir)) { e in
            let t = e as? TrainingError
            XCTAssertEqual(t?.code, .dataCorrupt)
            XCTAssertTrue(t?.message.contains("make data") ?? false, "\(e)")
        }
        // Count mismatch between images and labels.
        try IDX.write(path: dir + "/fashion/t10k-labels-idx1-ubyte", shape: [3], bytes: [1, 2, 3])
        XCTAssertThrowsError(try ImageDataset.load(name: "fashion", split: .test, dataDir: dir)) { e in
            XCTAssertEqual((e as? TrainingError)?.code, .dataCorrupt)
        }
        // A valid tiny file loads, scaled x/255*2-1.
        try IDX.write(path: dir + "/fashion/t10k-labels-idx1-ubyte", shape: [2], bytes: [1, 9])
        try IDX.write(path: dir + "/fashion/t10k-images-idx3-ubyte", shape: [2, 1, 2], bytes: [0, 255, 51, 204])
        let ds = try ImageDataset.load(name: "fashion", split: .test, dataDir: dir)
        XCTAssertEqual(ds.images, [-1, 1, 51.0 / 255 * 2 - 1, 204.0 / 255 * 2 - 1])
        XCTAssertEqual(ds.labels, [1, 9])
    }

    func testMNISTAndFashionIfPresent() throws {
        var found = 0
        for name in ["mnist", "fashion"] {
            guard FileManager.default.fileExists(atPath: "\(dataDir)/\(name)/t10k-labels-idx1-ubyte") else { continue }
            found += 1
            let train = try ImageDataset.load(name: name, split: .train, dataDir: dataDir)
            let test = try ImageDataset.load(name: name, split: .test, dataDir: dataDir)
            XCTAssertEqual(train.count, 60000)
            XCTAssertEqual(test.count, 10000)
            XCTAssertEqual(train.imageShape, [1, 28, 28])
            XCTAssertEqual(train.vectorDim, 784)
            XCTAssertEqual(test.classHistogram().reduce(0, +), 10000)
            XCTAssertTrue(test.classHistogram().allSatisfy { $0 >= 800 }, "\(test.classHistogram())")
            XCTAssertEqual(train.images.min(), -1)
            XCTAssertEqual(train.images.max(), 1)
            if name == "mnist" {
                XCTAssertEqual(Array(train.labels[0..<5]), [5, 0, 4, 1, 9])
                XCTAssertEqual(Array(test.labels[0..<5]), [7, 2, 1, 0, 4])
            } else {
                XCTAssertEqual(Array(train.labels[0..<5]), [9, 0, 0, 3, 0])
            }
        }
        if found == 0 { throw XCTSkip("MNIST / Fashion-MNIST not in \(dataDir): run `make data`") }
    }
}

final class BatcherTests: XCTestCase {
    func testShufflingIsDeterministicPermutation() throws {
        let b = try Batcher(count: 1000, batchSize: 64, seed: 42)
        let e0 = b.shuffledIndices(epoch: 0)
        XCTAssertEqual(e0, b.shuffledIndices(epoch: 0))
        XCTAssertEqual(e0, Batcher.shuffledIndices(count: 1000, epoch: 0, seed: 42))
        XCTAssertEqual(e0.sorted(), Array(0..<1000))
        XCTAssertNotEqual(e0, Array(0..<1000))
        let e1 = b.shuffledIndices(epoch: 1)
        XCTAssertEqual(e1.sorted(), Array(0..<1000))
        XCTAssertNotEqual(e0, e1)
        XCTAssertNotEqual(e0, Batcher.shuffledIndices(count: 1000, epoch: 0, seed: 43))
        XCTAssertEqual(b.batchesPerEpoch, 15)
        let batches = b.batches(epoch: 1)
        XCTAssertEqual(batches.count, 15)
        XCTAssertTrue(batches.allSatisfy { $0.count == 64 })
        XCTAssertEqual(Set(batches.flatMap { $0 }).count, 960)
        XCTAssertEqual(Array(b.batch(step: 16)), Array(batches[1]))
        let keep = try Batcher(count: 1000, batchSize: 64, seed: 42, dropLast: false)
        XCTAssertEqual(keep.batchesPerEpoch, 16)
        XCTAssertEqual(keep.batches(epoch: 0).last?.count, 1000 - 15 * 64)
        XCTAssertThrowsError(try Batcher(count: 10, batchSize: 0, seed: 1))
        XCTAssertThrowsError(try Batcher(count: 10, batchSize: 11, seed: 1))
    }
}

final class Toy2DTests: XCTestCase {
    private func stats(_ p: [Float]) -> (mean: (Float, Float), std: (Float, Float)) {
        let n = Float(p.count / 2)
        var mx: Float = 0, my: Float = 0
        for i in stride(from: 0, to: p.count, by: 2) { mx += p[i]; my += p[i + 1] }
        mx /= n; my /= n
        var vx: Float = 0, vy: Float = 0
        for i in stride(from: 0, to: p.count, by: 2) {
            vx += (p[i] - mx) * (p[i] - mx); vy += (p[i + 1] - my) * (p[i + 1] - my)
        }
        return ((mx, my), ((vx / n).squareRoot(), (vy / n).squareRoot()))
    }

    func testDeterministicPerSeedAndPrefixStable() {
        for toy in Toy2D.allCases {
            let a = toy.sample(n: 500, seed: 7)
            XCTAssertEqual(a.count, 1000)
            XCTAssertEqual(a, toy.sample(n: 500, seed: 7), "\(toy)")
            XCTAssertNotEqual(a, toy.sample(n: 500, seed: 8), "\(toy)")
            XCTAssertEqual(Array(a[0..<200]), toy.sample(n: 100, seed: 7), "\(toy)")
            XCTAssertTrue(a.allSatisfy { $0.isFinite })
            XCTAssertEqual(try Toy2D(name: toy.rawValue), toy)
            XCTAssertEqual(toy.sampleTensor(n: 3, seed: 1).shape, [3, 2])
        }
        XCTAssertEqual(try Toy2D(name: "swiss_roll"), .swissRoll)
        XCTAssertThrowsError(try Toy2D(name: "spirals"))
    }

    func testStatistics() {
        let n = 20000
        for toy in Toy2D.allCases {
            let s = stats(toy.sample(n: n, seed: 1))
            XCTAssertLessThan(abs(s.mean.0), 0.25, "\(toy) \(s)")
            XCTAssertLessThan(abs(s.mean.1), 0.25, "\(toy) \(s)")
            for sd in [s.std.0, s.std.1] {
                XCTAssertGreaterThan(sd, 0.4, "\(toy) \(s)")
                XCTAssertLessThan(sd, 1.1, "\(toy) \(s)")
            }
        }
    }

    func testEightGaussiansNearCentresAndBalanced() {
        let p = Toy2D.eightGaussians.sample(n: 8000, seed: 3)
        var counts = [Int](repeating: 0, count: 8)
        for i in 0..<4000 {
            let (x, y) = (p[2 * i], p[2 * i + 1])
            let d = Toy2D.eightGaussianCentres.map { ((x - $0.0) * (x - $0.0) + (y - $0.1) * (y - $0.1)).squareRoot() }
            let k = d.indices.min { d[$0] < d[$1] }!
            XCTAssertLessThan(d[k], 0.5, "point \(i) (\(x), \(y))")
            counts[k] += 1
        }
        XCTAssertTrue(counts.allSatisfy { $0 > 400 && $0 < 600 }, "\(counts)")
    }

    func testCheckerboardOnBlackCells() {
        let p = Toy2D.checkerboard.sample(n: 4000, seed: 5)
        var cells = Set<Int>()
        for i in 0..<4000 {
            let (x, y) = (p[2 * i], p[2 * i + 1])
            XCTAssertTrue(x >= -1 && x <= 1 && y >= -1 && y <= 1)
            let c = min(Int((x + 1) * 2), 3), r = min(Int((y + 1) * 2), 3)
            XCTAssertEqual((c + r) % 2, 0, "(\(x), \(y))")
            cells.insert(4 * r + c)
        }
        XCTAssertEqual(cells.count, 8)
    }

    func testMoonsAndSwissRollShapes() {
        let m = Toy2D.moons.sample(n: 2000, seed: 9)
        for i in 0..<2000 {
            // Distance to the nearer moon's circle is within noise (5 std of 0.05 per coordinate).
            let (x, y) = (m[2 * i] + 0.5, m[2 * i + 1] + 0.25)
            let dOuter = abs((x * x + y * y).squareRoot() - 1)
            let dInner = abs(((x - 1) * (x - 1) + (y - 0.5) * (y - 0.5)).squareRoot() - 1)
            XCTAssertLessThan(min(dOuter, dInner), 0.3)
        }
        let s = Toy2D.swissRoll.sample(n: 2000, seed: 9)
        for i in 0..<2000 {
            let r = (s[2 * i] * s[2 * i] + s[2 * i + 1] * s[2 * i + 1]).squareRoot()
            XCTAssertTrue(r > 0.15 * Float.pi - 0.3 && r < 0.45 * Float.pi + 0.3, "r = \(r)")
        }
    }
}

/// The fetch script's own checks (system python3, standard library only).
final class FetchScriptTests: XCTestCase {
    func testVerifyOnlyFailsLoudlyOnAFlippedByte() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for f in ["digits-images-idx3-ubyte", "digits-labels-idx1-ubyte"] {
            try FileManager.default.copyItem(atPath: "\(digitsDir)/\(f)", toPath: "\(dir)/\(f)")
        }
        let ok = try runPython(["tools/fetch_data.py", "--verify-only", "--digits-dir", dir, "digits"])
        XCTAssertEqual(ok.status, 0, ok.output)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/digits-images-idx3-ubyte")))
        bytes[1000] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/digits-images-idx3-ubyte"))
        let bad = try runPython(["tools/fetch_data.py", "--verify-only", "--digits-dir", dir, "digits"])
        XCTAssertNotEqual(bad.status, 0, bad.output)
        XCTAssertTrue(bad.output.contains("CORRUPT  \(dir)/digits-images-idx3-ubyte"), bad.output)
        XCTAssertTrue(bad.output.contains("to fetch them again"), bad.output)

        // MNIST in an empty data dir: missing, and the message says `make data`.
        let missing = try runPython(["tools/fetch_data.py", "--verify-only", "--data-dir", dir, "mnist"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.output.contains("MISSING") && missing.output.contains("make data"), missing.output)
    }

    func testRestrictedUnpicklerRefusesOsSystem() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let marker = dir + "/pwned"
        // Protocol-2 pickle calling os.system("touch <marker>"), written by hand:
        // PROTO 2, GLOBAL 'os system', SHORT_BINUNICODE cmd, TUPLE1, REDUCE, STOP.
        let cmd = Array("touch \(marker)".utf8)
        var pkl: [UInt8] = [0x80, 0x02] + Array("cos\nsystem\n".utf8)
        pkl += [0x8C, UInt8(cmd.count)] + cmd + [0x85, 0x52, 0x2E]
        let evil = dir + "/evil.pkl"
        try Data(pkl).write(to: URL(fileURLWithPath: evil))
        let r = try runPython(["tools/fetch_data.py", "--check-unpickler", evil])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("refusing to load global os.system"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "the pickle's payload ran")

        // A benign numpy-style array pickle is accepted by the stand-ins.
        let np: [UInt8] =
            [0x80, 0x02] + Array("cnumpy.core.multiarray\n_reconstruct\n".utf8)
            + Array("cnumpy\nndarray\n".utf8) + [0x4B, 0x00, 0x85] + [0x55, 0x01] + Array("b".utf8) + [0x87, 0x52]
            + [0x28, 0x4B, 0x01, 0x4B, 0x02, 0x85] + Array("cnumpy\ndtype\n".utf8) + [0x55, 0x02] + Array("u1".utf8)
            + [0x4B, 0x00, 0x4B, 0x01, 0x87, 0x52] + [0x28, 0x4B, 0x03, 0x55, 0x01] + Array("|".utf8)
            + [0x4E, 0x4E, 0x4E, 0x4A, 0xFF, 0xFF, 0xFF, 0xFF, 0x4A, 0xFF, 0xFF, 0xFF, 0xFF, 0x4B, 0x00, 0x74, 0x62]
            + [0x89, 0x55, 0x02, 0x07, 0x09, 0x74, 0x62, 0x2E]
        let good = dir + "/ok.pkl"
        try Data(np).write(to: URL(fileURLWithPath: good))
        let r2 = try runPython(["tools/fetch_data.py", "--check-unpickler", good])
        XCTAssertEqual(r2.status, 0, r2.output)
        XCTAssertTrue(r2.output.contains("loaded: _NDArray"), r2.output)
    }
}

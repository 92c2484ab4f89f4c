import Foundation
import Generation
import SamplerClient
import ServingTestSupport
import TensorCore
import TestSupport
import Training
import XCTest

final class GenerationArgumentTests: XCTestCase {
    func testSeedRangesShardsAndLabelRulesParse() throws {
        XCTAssertEqual(try SeedRange(parsing: "0-59999").count, 60_000)
        XCTAssertEqual(try SeedRange(parsing: " 7 ").count, 1)
        XCTAssertEqual(try SeedRange(parsing: "18446744073709551615").last, UInt64.max)
        for bad in ["5-1", "a-b", "-3", "1-2-3", "", "1.5-3", "0-99999999999"] {
            XCTAssertThrowsError(try SeedRange(parsing: bad), bad) { e in
                XCTAssertEqual((e as? GenerationError)?.code, .invalidArgument)
                XCTAssertTrue("\(e)".contains("seed range"), "\(e)")
            }
        }
        XCTAssertEqual(try Shard(parsing: "2/8"), try Shard(index: 2, count: 8))
        for bad in ["8/8", "-1/2", "x", "1/0", "1/"] { XCTAssertThrowsError(try Shard(parsing: bad), bad) }
        XCTAssertEqual(try LabelRule(parsing: "cycle"), .cycle)
        XCTAssertEqual(try LabelRule(parsing: "fixed:3"), .fixed(3))
        XCTAssertEqual(try LabelRule(parsing: "3"), .fixed(3))
        XCTAssertEqual(try LabelRule(parsing: "random:5"), .random(seed: 5))
        XCTAssertEqual(try LabelRule(parsing: "random"), .random(seed: 0))
        for bad in ["bogus", "fixed:-1", "random:x"] { XCTAssertThrowsError(try LabelRule(parsing: bad), bad) }
        XCTAssertThrowsError(try OutputFormat(parsing: "jpeg"))
    }

    func testLabelRulesArePureFunctionsOfTheSeed() throws {
        XCTAssertEqual(
            (0..<25).map { LabelRule.cycle.label(seed: UInt64($0), numClasses: 10)! }, (0..<25).map { Int32($0 % 10) })
        let r = LabelRule.random(seed: 9)
        let draws = (0..<2000).map { r.label(seed: UInt64($0), numClasses: 10)! }
        XCTAssertEqual(draws, (0..<2000).map { r.label(seed: UInt64($0), numClasses: 10)! }, "same seed, same label")
        XCTAssertNotEqual(draws, (0..<2000).map { LabelRule.random(seed: 10).label(seed: UInt64($0), numClasses: 10)! })
        for c in 0..<10 {
            let n = draws.filter { $0 == c }.count
            XCTAssertTrue((140...260).contains(n), "class \(c) drawn \(n) of 2000 times")
        }
        XCTAssertNil(LabelRule.none.label(seed: 3, numClasses: 0))
        XCTAssertThrowsError(try LabelRule.cycle.check(numClasses: 0, model: "u")) {
            XCTAssertTrue("\($0)".contains("unconditional"))
        }
        XCTAssertThrowsError(try LabelRule.none.check(numClasses: 10, model: "c")) {
            XCTAssertTrue("\($0)".contains("class-conditional"))
        }
        XCTAssertThrowsError(try LabelRule.fixed(10).check(numClasses: 10, model: "c")) {
            XCTAssertTrue("\($0)".contains("out of range"))
        }
        XCTAssertNoThrow(try LabelRule.fixed(9).check(numClasses: 10, model: "c"))
    }

    func testShardsPartitionTheChunks() throws {
        let range = try SeedRange(first: 3, last: 1002)
        for n in 1...5 {
            var seen: [UInt64] = []
            for i in 0..<n {
                let plan = ChunkPlan(range: range, chunkSize: 64, shard: try Shard(index: i, count: n))
                for k in plan.myChunks { seen += Array(plan.seeds(ofChunk: k)) }
                XCTAssertEqual(plan.mySampleCount, plan.myChunks.reduce(0) { $0 + plan.seeds(ofChunk: $1).count })
            }
            XCTAssertEqual(seen.sorted(), Array(3...1002), "\(n) shards")
        }
        let plan = ChunkPlan(range: range, chunkSize: 64, shard: .whole)
        XCTAssertEqual(plan.chunkCount, 16)
        XCTAssertEqual(plan.seeds(ofChunk: 15), 963...1002)
        XCTAssertEqual(plan.chunk(ofSeed: 66), plan.chunk(ofSeed: 3) + 0)
        XCTAssertEqual(plan.chunk(ofSeed: 67), 1)
    }
}

final class GenerationRunTests: XCTestCase {
    var repo = ""

    override func setUpWithError() throws {
        repo = try GenRepo.make()
        setComputeThreads(1)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: repo)
    }

    func local(_ model: String, batch: Int = 5) async throws -> LocalSource {
        try await LocalSource(repository: repo, model: model, version: nil, batch: batch)
    }

    /// Every format holds exactly the engine's samples for its seeds (float32), or their 8-bit
    /// quantisation, with the labels of the rule, and the manifest hashes what is stored.
    func testFormatsHoldTheEngineSamples() async throws {
        let src = try await local("img")
        let seeds = try SeedRange(first: 10, last: 29)
        let reference = try await src.samples(
            seeds: Array(10...29), labels: (10...29).map { Int32($0 % 10) }, bestOf: 1)
        XCTAssertEqual(reference.count, 20 * 64)

        let npyDir = temporaryFolder()
        let s = try await generate(
            src, GenerationOptions(out: npyDir, seeds: seeds, format: .npy, labels: .cycle, chunk: 8, batch: 3))
        XCTAssertEqual(s.samples, 20)
        XCTAssertEqual(s.generatedNow, 20)
        var floats: [Float] = []
        for name in ["samples-000000010-000000017", "samples-000000018-000000025", "samples-000000026-000000029"] {
            let bytes = [UInt8](FileManager.default.contents(atPath: "\(npyDir)/npy/\(name).npy")!)
            let header = 10 + Int(bytes[8]) + Int(bytes[9]) << 8
            XCTAssertTrue(String(decoding: bytes[10..<header], as: UTF8.self).contains("'descr': '<f4'"))
            floats += bytes[header...].withUnsafeBytes { raw in
                (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
            }
        }
        XCTAssertEqual(floats, reference, "npy holds the engine's float32 samples bit for bit")
        let labelBytes = [UInt8](FileManager.default.contents(atPath: "\(npyDir)/npy/labels-000000010-000000017.npy")!)
        let lh = 10 + Int(labelBytes[8]) + Int(labelBytes[9]) << 8
        XCTAssertTrue(String(decoding: labelBytes[10..<lh], as: UTF8.self).contains("'descr': '<i4'"))
        XCTAssertEqual(lh % 64, 0, "npy pads its header to 64 bytes")
        XCTAssertEqual(labelBytes.count - lh, 8 * 4)
        XCTAssertEqual(
            Array(labelBytes[lh...]),
            [0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0],
            "seeds 10...17 -> classes 0...7, little-endian int32")
        let lines = manifestLines(npyDir)
        XCTAssertEqual(lines.count, 20)
        XCTAssertTrue(
            lines.contains {
                $0.hasPrefix(
                    "{\"seed\":13,\"label\":3,\"file\":\"npy/samples-000000010-000000017.npy\",\"row\":3,\"sha256\":\"")
            })
        let row3 = reference[(3 * 64)..<(4 * 64)].withUnsafeBytes { Array($0) }
        XCTAssertTrue(
            lines.contains { $0.contains("\"row\":3,\"sha256\":\"\(SHA256.hex(row3))\"") },
            "row hash is over the stored bytes")

        let idxDir = temporaryFolder()
        _ = try await generate(
            src, GenerationOptions(out: idxDir, seeds: seeds, format: .idx, labels: .cycle, chunk: 8))
        let parsed = try IDX.parse(
            [UInt8](FileManager.default.contents(atPath: "\(idxDir)/idx/samples-000000010-000000017.idx")!))
        XCTAssertEqual(parsed.shape, [8, 8, 8], "MNIST-style [n, H, W] for one channel")
        XCTAssertEqual(parsed.bytes, reference[0..<(8 * 64)].map { PNG.quantize($0) })
        let idxLabels = try IDX.parse(
            [UInt8](FileManager.default.contents(atPath: "\(idxDir)/idx/labels-000000026-000000029.idx")!))
        XCTAssertEqual(idxLabels.shape, [4])
        XCTAssertEqual(idxLabels.bytes, [6, 7, 8, 9])

        let pngDir = temporaryFolder()
        _ = try await generate(
            src, GenerationOptions(out: pngDir, seeds: seeds, format: .png, labels: .cycle, chunk: 8))
        let image = try PNG.read(path: "\(pngDir)/png/000000/000000021.png")
        XCTAssertEqual([image.width, image.height, image.channels], [8, 8, 1])
        XCTAssertEqual(image.pixels, reference[(11 * 64)..<(12 * 64)].map { PNG.quantize($0) })
        let sha = try sha256Hex(ofFile: "\(pngDir)/png/000000/000000021.png")
        XCTAssertTrue(
            manifestLines(pngDir).contains(
                "{\"seed\":21,\"label\":1,\"file\":\"png/000000/000000021.png\",\"sha256\":\"\(sha)\",\"model\":\"img\",\"version\":1}"
            ))
        for d in [npyDir, idxDir, pngDir] {
            XCTAssertEqual(temporaries(d), []); try? FileManager.default.removeItem(atPath: d)
        }
    }

    /// A labelled set in IDX read back by the Python reader in tools/ (nothing but the IDX format),
    /// merged into MNIST's two training files, which our IDX parser reads to the same bytes.
    func testLabelledIDXSetIsReadByThePythonReader() async throws {
        let src = try await local("img")
        let labels = (10...34).map { Int32($0 % 10) }
        let reference = try await src.samples(seeds: Array(10...34), labels: labels, bestOf: 1)
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try await generate(
            src,
            GenerationOptions(
                out: dir, seeds: try SeedRange(first: 10, last: 34), format: .idx, labels: .cycle, chunk: 8))
        let runner = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
        let out = try CrossCheckPython.run(
            runner, [packageRoot + "/tools/read_idx.py", dir, "--merge", dir + "/mnist"])
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        XCTAssertEqual(summary["count"] as? Int, 25)
        XCTAssertEqual(summary["shape"] as? [Int], [8, 8])
        XCTAssertEqual(summary["first_labels"] as? [Int], labels.prefix(20).map { Int($0) }, "the first 20 of 25")
        XCTAssertNil(summary["labels"], "the whole list only with --all-labels")
        XCTAssertEqual(summary["histogram"] as? [Int], [3, 3, 3, 3, 3, 2, 2, 2, 2, 2])
        let images = try IDX.parse(
            [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/mnist/train-images-idx3-ubyte"))))
        XCTAssertEqual(images.shape, [25, 8, 8])
        XCTAssertEqual(images.bytes, reference.map { PNG.quantize($0) })
        let merged = try IDX.parse(
            [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/mnist/train-labels-idx1-ubyte"))))
        XCTAssertEqual(merged.bytes, labels.map { UInt8($0) })
        let all = try CrossCheckPython.run(runner, [packageRoot + "/tools/read_idx.py", dir, "--all-labels"])
        let full = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(all.utf8)) as? [String: Any])
        XCTAssertEqual(full["labels"] as? [Int], labels.map { Int($0) })
    }

    func testVectorModelsAsFloatIDXAndNPY() async throws {
        let src = try await local("vec")
        let reference = try await src.samples(seeds: Array(0...6), labels: nil, bestOf: 1)
        let dir = temporaryFolder()
        _ = try await generate(
            src, GenerationOptions(out: dir, seeds: try SeedRange(first: 0, last: 6), format: .idx, chunk: 10))
        let bytes = [UInt8](FileManager.default.contents(atPath: "\(dir)/idx/samples-000000000-000000006.idx")!)
        XCTAssertEqual(Array(bytes[0..<12]), [0, 0, 0x0D, 2, 0, 0, 0, 7, 0, 0, 0, 2], "float32 IDX [7, 2]")
        let values = (0..<14).map { i in
            Float(bitPattern: (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(bytes[12 + 4 * i + $1]) })
        }
        XCTAssertEqual(values, reference)
        await XCTAssertThrowsGeneration(.invalidArgument, containing: "PNG needs images") {
            _ = try await generate(
                src, GenerationOptions(out: temporaryFolder(), seeds: try SeedRange(first: 0, last: 6), format: .png))
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// An interrupted run leaves only whole chunks behind; --resume finishes it to the same bytes as
    /// an uninterrupted run, and repairs files that were damaged or removed since.
    func testResumeAfterFailureEqualsAnUninterruptedRun() async throws {
        let src = try await local("img", batch: 4)
        let seeds = try SeedRange(first: 100, last: 147)
        let clean = temporaryFolder()
        _ = try await generate(
            src, GenerationOptions(out: clean, seeds: seeds, format: .png, labels: .random(seed: 2), chunk: 8, batch: 4)
        )

        let dir = temporaryFolder()
        let opts = GenerationOptions(
            out: dir, seeds: seeds, format: .png, labels: .random(seed: 2), chunk: 8, batch: 4, inFlight: 1)
        await XCTAssertThrowsGeneration(.source, containing: "injected failure") {
            _ = try await generate(FailingSource(src, failAt: 6), opts)
        }
        XCTAssertEqual(temporaries(dir), [])
        XCTAssertEqual(
            manifestLines(dir).count, 16, "calls 1-5 of 4 samples: chunks 0 and 1 finished, chunk 2 was not recorded")
        await XCTAssertThrowsGeneration(.outputConflict, containing: "`resume`") { _ = try await generate(src, opts) }

        var resume = opts
        resume.resume = true
        let s = try await generate(src, resume)
        XCTAssertEqual(s.alreadyDone, 16)
        XCTAssertEqual(s.generatedNow, 32)
        XCTAssertEqual(dataFiles(dir), dataFiles(clean), "resumed run equals the uninterrupted one, manifest included")

        // Damage: a file changed, one removed, a torn manifest line, a stale temporary.
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: "\(dir)/png/000000/000000101.png"))
        try FileManager.default.removeItem(atPath: "\(dir)/png/000000/000000140.png")
        let h = FileHandle(forWritingAtPath: "\(dir)/manifest.jsonl")!
        h.seekToEndOfFile(); h.write(Data("{\"seed\":1".utf8)); h.closeFile()
        try Data([0]).write(to: URL(fileURLWithPath: "\(dir)/png/000000/000000120.png.tmp-1-abc"))
        let again = try await generate(src, resume)
        XCTAssertEqual(again.generatedNow, 16, "the two damaged chunks were made again")
        XCTAssertEqual(dataFiles(dir), dataFiles(clean))
        XCTAssertEqual(temporaries(dir), [])
        let done = try await generate(src, resume)
        XCTAssertEqual(done.generatedNow, 0, "a finished run has nothing left to do")
        for d in [clean, dir] { try? FileManager.default.removeItem(atPath: d) }
    }

    func testShardsTogetherEqualOneRun() async throws {
        let src = try await local("img")
        let seeds = try SeedRange(first: 0, last: 40)
        let whole = temporaryFolder(), sharded = temporaryFolder()
        _ = try await generate(src, GenerationOptions(out: whole, seeds: seeds, format: .npy, labels: .cycle, chunk: 6))
        for i in 0..<3 {
            let s = try await generate(
                src,
                GenerationOptions(
                    out: sharded, seeds: seeds, format: .npy, labels: .cycle, chunk: 6,
                    shard: try Shard(index: i, count: 3)))
            XCTAssertEqual(s.samples, [17, 12, 12][i], "chunks 0,3,6 / 1,4 / 2,5 of 6, 6, 6, 6, 6, 6, 5 seeds")
        }
        XCTAssertEqual(sampleFiles(sharded), sampleFiles(whole), "the shards' files are the run's files, byte for byte")
        XCTAssertEqual(sampleFiles(whole).count, 14, "7 chunks: samples + labels")
        XCTAssertEqual(
            manifestLines(sharded), manifestLines(whole), "the shards' manifests together are the run's manifest")
        await XCTAssertThrowsGeneration(.outputConflict, containing: "3 shards") {
            _ = try await generate(
                src, GenerationOptions(out: sharded, seeds: seeds, format: .npy, labels: .cycle, chunk: 6))
        }
        for d in [whole, sharded] { try? FileManager.default.removeItem(atPath: d) }
    }

    func testBadOutputFoldersAreRefusedAndNothingIsWritten() async throws {
        let img = try await local("img"), plain = try await local("plain")
        let seeds = try SeedRange(first: 0, last: 9)
        let dir = temporaryFolder()
        _ = try await generate(img, GenerationOptions(out: dir, seeds: seeds, format: .png, labels: .cycle, chunk: 5))
        let before = dataFiles(dir)
        await XCTAssertThrowsGeneration(.outputConflict, containing: "model 'img' version 1") {
            _ = try await generate(
                plain, GenerationOptions(out: dir, seeds: seeds, format: .png, chunk: 5, resume: true))
        }
        await XCTAssertThrowsGeneration(.outputConflict, containing: "seeds 0-9 (asked: 0-19)") {
            _ = try await generate(
                img,
                GenerationOptions(
                    out: dir, seeds: try SeedRange(first: 0, last: 19), format: .png, labels: .cycle,
                    chunk: 5, resume: true))
        }
        XCTAssertEqual(dataFiles(dir), before, "refused runs change nothing")

        let unrelated = temporaryFolder()
        try FileManager.default.createDirectory(atPath: unrelated, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: URL(fileURLWithPath: "\(unrelated)/notes.txt"))
        await XCTAssertThrowsGeneration(.outputConflict, containing: "not empty") {
            _ = try await generate(plain, GenerationOptions(out: unrelated, seeds: seeds, format: .png))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: unrelated), ["notes.txt"])
        await XCTAssertThrowsGeneration(.outputConflict, containing: "is a file") {
            _ = try await generate(plain, GenerationOptions(out: "\(unrelated)/notes.txt", seeds: seeds, format: .png))
        }
        await XCTAssertThrowsGeneration(.io, containing: "cannot create the output folder") {
            _ = try await generate(
                plain, GenerationOptions(out: "\(unrelated)/notes.txt/sub", seeds: seeds, format: .png))
        }
        await XCTAssertThrowsGeneration(.invalidArgument, containing: "ratio classifier") {
            _ = try await generate(
                plain, GenerationOptions(out: temporaryFolder(), seeds: seeds, format: .png, bestOf: 4))
        }
        await XCTAssertThrowsGeneration(.invalidArgument, containing: "class-conditional") {
            _ = try await generate(img, GenerationOptions(out: temporaryFolder(), seeds: seeds, format: .png))
        }
        do {
            _ = try await LocalSource(repository: repo, model: "nope", version: nil, batch: 4)
            XCTFail("unknown model accepted")
        } catch {
            XCTAssertTrue(
                "\(error)".contains("no model 'nope'") && "\(error)".contains("img, plain, ranked, vec"), "\(error)")
        }
        do {
            _ = try await LocalSource(repository: repo, model: "img", version: 7, batch: 4)
            XCTFail("unknown version accepted")
        } catch {
            XCTAssertTrue("\(error)".contains("no version 7"), "\(error)")
        }
        for d in [dir, unrelated] { try? FileManager.default.removeItem(atPath: d) }
    }

    /// Through two real daemons (client-side round robin), one of them killed mid-run: the run
    /// completes through the other and equals the in-process run byte for byte.
    func testDaemonsGiveTheInProcessBytesEvenWhenOneDies() async throws {
        let a = try DaemonProcess(root: repo), b = try DaemonProcess(root: repo)
        let seeds = try SeedRange(first: 5, last: 124)
        let reference = temporaryFolder()
        _ = try await generate(
            try await local("img"),
            GenerationOptions(out: reference, seeds: seeds, format: .png, labels: .random(seed: 7), chunk: 10))

        let config = SamplerClient.Configuration(
            endpoints: [
                SamplerEndpoint(host: "127.0.0.1", port: a.grpcPort),
                SamplerEndpoint(host: "127.0.0.1", port: b.grpcPort),
            ],
            timeout: .seconds(60), retry: RetryPolicy(maxAttempts: 8, initialBackoff: .milliseconds(20)))
        let remote = try await DaemonSource(configuration: config, model: "img", version: nil)
        XCTAssertEqual(remote.info.version, 1)
        XCTAssertEqual(remote.info.sampleShape, [1, 8, 8])
        let dir = temporaryFolder()
        let killed = SharedFlag()
        let s = try await DatasetGenerator(
            source: remote,
            options: GenerationOptions(
                out: dir, seeds: seeds, format: .png, labels: .random(seed: 7),
                chunk: 10, batch: 4, inFlight: 2)
        ).run { p in
            if p.done >= 30 && killed.set() { kill(a.pid, SIGKILL) }
        }
        await remote.close()
        XCTAssertTrue(killed.value, "daemon a was killed mid-run")
        XCTAssertNotNil(a.waitForExit(timeout: 5))
        XCTAssertEqual(s.samples, 120)
        XCTAssertEqual(dataFiles(dir), dataFiles(reference), "through daemons == in process, manifest included")

        // Best-of-K through the daemon equals best-of-K in process, and differs from plain sampling.
        let bConfig = SamplerClient.Configuration(
            endpoints: [SamplerEndpoint(host: "127.0.0.1", port: b.grpcPort)], timeout: .seconds(60))
        let ranked = try await DaemonSource(configuration: bConfig, model: "ranked", version: nil)
        XCTAssertTrue(ranked.info.supportsBestOf)
        let vseeds = try SeedRange(first: 0, last: 49)
        let viaDaemon = temporaryFolder(), inProcess = temporaryFolder(), plain = temporaryFolder()
        _ = try await generate(
            ranked, GenerationOptions(out: viaDaemon, seeds: vseeds, format: .npy, chunk: 20, batch: 8, bestOf: 4))
        await ranked.close()
        let localRanked = try await local("ranked")
        _ = try await generate(
            localRanked, GenerationOptions(out: inProcess, seeds: vseeds, format: .npy, chunk: 20, bestOf: 4))
        _ = try await generate(localRanked, GenerationOptions(out: plain, seeds: vseeds, format: .npy, chunk: 20))
        XCTAssertEqual(dataFiles(viaDaemon), dataFiles(inProcess), "best-of-4 through the daemon == in process")
        XCTAssertNotEqual(sampleFiles(inProcess), sampleFiles(plain), "best-of-4 replaced some samples")
        XCTAssertTrue(
            String(decoding: FileManager.default.contents(atPath: "\(inProcess)/generate.json")!, as: UTF8.self)
                .contains("\"best_of\" : 4"))
        for d in [viaDaemon, inProcess, plain] { try? FileManager.default.removeItem(atPath: d) }
        b.sigterm()
        _ = b.waitForExit(timeout: 20)
        for d in [dir, reference] { try? FileManager.default.removeItem(atPath: d) }
    }
}

/// A flag that is set once.
final class SharedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var isSet = false
    /// True for the caller that set it.
    func set() -> Bool {
        lock.withLock {
            defer { isSet = true }; return !isSet
        }
    }
    var value: Bool { lock.withLock { isSet } }
}

import Foundation
import Generation
import ServingTestSupport
import XCTest

/// A repository with three tiny models: `img` (1x8x8, 10 classes), `plain` (1x8x8, unconditional)
/// `vec` (2-D vectors) and `ranked` (2-D vectors with a ratio classifier, for best-of-K).
enum GenRepo {
    static func make() throws -> String {
        let root = try Fixtures.repository()
        try Fixtures.install(try Fixtures.imageGenerator(seed: 3, numClasses: 10), root: root, name: "img", version: 1)
        try Fixtures.install(try Fixtures.imageGenerator(seed: 4), root: root, name: "plain", version: 1)
        try Fixtures.install(try Fixtures.vectorGenerator(seed: 5), root: root, name: "vec", version: 1)
        try Fixtures.install(
            try Fixtures.vectorGeneratorWithClassifier(seed: 6), root: root, name: "ranked", version: 1)
        return root
    }
}

func temporaryFolder(_ tag: String = "gen") -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("onestep-\(tag)-\(UUID().uuidString)").path
}

/// Every file under `dir` (relative path -> bytes), except summaries (they hold timings).
func dataFiles(_ dir: String) -> [String: Data] {
    var out: [String: Data] = [:]
    guard let e = FileManager.default.enumerator(atPath: dir) else { return out }
    while let rel = e.nextObject() as? String {
        var isDir: ObjCBool = false
        let full = (dir as NSString).appendingPathComponent(rel)
        guard FileManager.default.fileExists(atPath: full, isDirectory: &isDir), !isDir.boolValue else { continue }
        if (rel as NSString).lastPathComponent.hasPrefix("summary") { continue }
        out[rel] = FileManager.default.contents(atPath: full)
    }
    return out
}

/// The sample files only (no manifests, spec or summaries).
func sampleFiles(_ dir: String) -> [String: Data] {
    dataFiles(dir).filter { $0.key.contains("/") }
}

/// Manifest lines of every manifest in `dir`, sorted.
func manifestLines(_ dir: String) -> [String] {
    let items = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    return items.filter { $0.hasPrefix("manifest") }.flatMap { name -> [String] in
        let text = (try? String(contentsOfFile: (dir as NSString).appendingPathComponent(name), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }.sorted()
}

/// Leftover temporary files (`*.tmp-*`) under `dir`.
func temporaries(_ dir: String) -> [String] {
    (FileManager.default.enumerator(atPath: dir)?.allObjects as? [String] ?? []).filter { $0.contains(".tmp-") }
}

/// Fails call number `failAt` (1-based) and every later one; passes the others to `inner`.
final class FailingSource: SampleSource, @unchecked Sendable {
    let inner: any SampleSource
    let failAt: Int
    private let lock = NSLock()
    private var calls = 0
    init(_ inner: any SampleSource, failAt: Int) {
        self.inner = inner
        self.failAt = failAt
    }
    var info: SourceInfo { inner.info }
    func samples(seeds: [UInt64], labels: [Int32]?, bestOf: Int) async throws -> [Float] {
        let n: Int = lock.withLock {
            calls += 1; return calls
        }
        if n >= failAt { throw GenerationError(.source, "injected failure at call \(n)") }
        return try await inner.samples(seeds: seeds, labels: labels, bestOf: bestOf)
    }
    func close() async {}
}

func generate(_ source: any SampleSource, _ options: GenerationOptions) async throws -> GenerationSummary {
    try await DatasetGenerator(source: source, options: options).run()
}

func XCTAssertThrowsGeneration(
    _ code: GenerationError.Code, containing text: String, file: StaticString = #filePath, line: UInt = #line,
    _ body: () async throws -> Void
) async {
    do {
        try await body()
        XCTFail("expected a \(code) error containing '\(text)'", file: file, line: line)
    } catch let e as GenerationError {
        XCTAssertEqual(e.code, code, "\(e)", file: file, line: line)
        XCTAssertTrue(e.description.contains(text), "'\(e)' does not mention '\(text)'", file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

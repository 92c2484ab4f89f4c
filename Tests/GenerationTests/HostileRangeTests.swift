import Foundation
import Generation
import XCTest

/// Seeds and chunk sizes at the edges of 64 bits: planned and generated without overflow.
extension GenerationRunTests {
    func testChunkPlanAtTheTopOfTheSeedRange() throws {
        let top = UInt64.max
        let one = try SeedRange(parsing: "18446744073709551615")
        XCTAssertEqual(ChunkPlan(range: one, chunkSize: 1_000, shard: .whole).seeds(ofChunk: 0), top...top)
        let last = try SeedRange(first: top - 9, last: top)
        for chunk in [1, 3, 7, 10, 1_000, 1_000_000] {
            let plan = ChunkPlan(range: last, chunkSize: chunk, shard: .whole)
            let covered = (0..<plan.chunkCount).flatMap { Array(plan.seeds(ofChunk: $0)) }
            XCTAssertEqual(covered, Array((top - 9)...top), "chunk \(chunk)")
            XCTAssertEqual(plan.chunk(ofSeed: top), plan.chunkCount - 1)
        }
        XCTAssertThrowsError(try SeedRange(parsing: "18446744073709551616"), "past UInt64")
        XCTAssertThrowsError(try SeedRange(parsing: "0-18446744073709551615"), "more than the per-run limit")
        XCTAssertThrowsError(try SeedRange(parsing: "-1"))
        for bad in ["9223372036854775808/2", "1/9223372036854775807", "-1/2", "0/0", "0/-9223372036854775808"] {
            XCTAssertThrowsError(try Shard(parsing: bad), bad)
        }
    }

    func testGeneratesTheLastSeedsOf64Bits() async throws {
        let src = try await local("img")
        let out = temporaryFolder()
        let seeds = try SeedRange(first: UInt64.max - 5, last: UInt64.max)
        let s = try await generate(
            src, GenerationOptions(out: out, seeds: seeds, format: .npy, labels: .cycle, chunk: 2, batch: 2))
        XCTAssertEqual(s.samples, 6)
        XCTAssertNotNil(
            FileManager.default.contents(atPath: "\(out)/npy/samples-18446744073709551614-18446744073709551615.npy"))
        for (name, options) in [
            (
                "chunk 0",
                GenerationOptions(out: temporaryFolder(), seeds: seeds, format: .npy, labels: .cycle, chunk: 0)
            ),
            (
                "chunk Int.max",
                GenerationOptions(out: temporaryFolder(), seeds: seeds, format: .npy, labels: .cycle, chunk: .max)
            ),
            (
                "batch Int.max",
                GenerationOptions(out: temporaryFolder(), seeds: seeds, format: .npy, labels: .cycle, batch: .max)
            ),
            (
                "best-of Int.max",
                GenerationOptions(out: temporaryFolder(), seeds: seeds, format: .npy, labels: .cycle, bestOf: .max)
            ),
            (
                "in-flight 0",
                GenerationOptions(out: temporaryFolder(), seeds: seeds, format: .npy, labels: .cycle, inFlight: 0)
            ),
        ] {
            XCTAssertThrowsError(try DatasetGenerator(source: src, options: options), name)
        }
    }
}

import TensorCore
import XCTest

final class PhiloxTests: XCTestCase {
    private func eq(
        _ a: (UInt32, UInt32, UInt32, UInt32), _ b: (UInt32, UInt32, UInt32, UInt32),
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual([a.0, a.1, a.2, a.3], [b.0, b.1, b.2, b.3], file: file, line: line)
    }

    /// Random123's kat_vectors for philox4x32 with 10 rounds.
    func testRandom123KnownAnswers() {
        eq(
            Philox4x32.block(counter: (0, 0, 0, 0), key: (0, 0)),
            (0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8))
        let f: UInt32 = 0xffff_ffff
        eq(
            Philox4x32.block(counter: (f, f, f, f), key: (f, f)),
            (0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd))
        eq(
            Philox4x32.block(
                counter: (0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344),
                key: (0xa409_3822, 0x299f_31d0)),
            (0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1))
    }

    /// The stream maps (seed, stream, block index) onto (key, counter) as documented.
    func testStreamLayout() {
        let seed: UInt64 = 0x0123_4567_89ab_cdef, stream: UInt64 = 0x1122_3344_5566_7788
        var rng = Philox4x32(seed: seed, stream: stream)
        let key = (UInt32(0x89ab_cdef), UInt32(0x0123_4567))
        for blockIndex in 0..<3 {
            let b = Philox4x32.block(counter: (UInt32(blockIndex), 0, 0x5566_7788, 0x1122_3344), key: key)
            eq((rng.nextUInt32(), rng.nextUInt32(), rng.nextUInt32(), rng.nextUInt32()), b)
        }
    }

    func testUniformIsInOpenIntervalAndFillMatchesNext() {
        var a = Philox4x32(seed: 7), b = Philox4x32(seed: 7)
        var buf = [Float](repeating: 0, count: 1001)
        buf.withUnsafeMutableBufferPointer { a.fillUniform($0) }
        var sum = 0.0
        for v in buf {
            XCTAssertEqual(v, b.nextUniform())
            XCTAssertTrue(v > 0 && v < 1)
            sum += Double(v)
        }
        XCTAssertEqual(sum / 1001, 0.5, accuracy: 0.03)
        // Extremes of the mapping, checked by recomputing the first word of a stream both ways.
        XCTAssertEqual((Float(UInt32(0) >> 9) + 0.5) * 0x1p-23, 0x1p-24)
        XCTAssertEqual((Float(UInt32.max >> 9) + 0.5) * 0x1p-23, 1 - 0x1p-24)
        var c = Philox4x32(seed: 7)
        XCTAssertEqual(buf[0], (Float(c.nextUInt32() >> 9) + 0.5) * 0x1p-23)
    }

    func testNormalMomentsAndFillMatchesNext() {
        let n = 100_000
        var rng = Philox4x32(seed: 42, stream: 3)
        var buf = [Float](repeating: 0, count: n)
        _ = rng.nextNormal()  // leave a spare so fillNormal must hand it out first
        var check = rng
        buf.withUnsafeMutableBufferPointer { rng.fillNormal($0) }
        for i in 0..<1000 { XCTAssertEqual(buf[i], check.nextNormal(), "i=\(i)") }
        var m1 = 0.0, m2 = 0.0, m4 = 0.0, beyond2 = 0
        for v in buf {
            let d = Double(v)
            m1 += d; m2 += d * d; m4 += d * d * d * d
            if abs(d) > 2 { beyond2 += 1 }
            XCTAssertTrue(v.isFinite)
        }
        m1 /= Double(n); m2 /= Double(n); m4 /= Double(n)
        // Standard errors: mean 0.0032, variance 0.0045, 4th moment ~0.03.
        XCTAssertEqual(m1, 0, accuracy: 0.02)
        XCTAssertEqual(m2, 1, accuracy: 0.03)
        XCTAssertEqual(m4, 3, accuracy: 0.2)
        XCTAssertEqual(Double(beyond2) / Double(n), 0.0455, accuracy: 0.004)
        // The documented formula, word for word.
        var words = Philox4x32(seed: 5), normals = Philox4x32(seed: 5)
        let u1 = (Double(words.nextUInt32() >> 8) + 0.5) * 0x1p-24
        let u2 = (Double(words.nextUInt32() >> 8) + 0.5) * 0x1p-24
        let r = (-2 * log(u1)).squareRoot()
        XCTAssertEqual(normals.nextNormal(), Float(r * cos(2 * Double.pi * u2)))
        XCTAssertEqual(normals.nextNormal(), Float(r * sin(2 * Double.pi * u2)))
    }

    func testSampleNoiseIsIndependentOfBatching() {
        let seed: UInt64 = 2024, count = 37
        var batch = [Float](repeating: 0, count: 10 * count)
        batch.withUnsafeMutableBufferPointer { all in
            for i in 0..<10 {
                SampleNoise.fill(
                    seed: seed, index: UInt64(i),
                    UnsafeMutableBufferPointer(rebasing: all[(i * count)..<((i + 1) * count)]))
            }
        }
        for i in [9, 3, 0, 7, 1, 8, 2, 6, 5, 4] {  // different order, one sample at a time
            var one = [Float](repeating: 0, count: count)
            one.withUnsafeMutableBufferPointer { SampleNoise.fill(seed: seed, index: UInt64(i), $0) }
            XCTAssertEqual(one, Array(batch[(i * count)..<((i + 1) * count)]), "sample \(i)")
        }
        // A shorter request is a prefix; other seeds and indices differ.
        var short = [Float](repeating: 0, count: 5)
        short.withUnsafeMutableBufferPointer { SampleNoise.fill(seed: seed, index: 4, $0) }
        XCTAssertEqual(short, Array(batch[(4 * count)..<(4 * count + 5)]))
        var other = [Float](repeating: 0, count: count)
        other.withUnsafeMutableBufferPointer { SampleNoise.fill(seed: seed + 1, index: 4, $0) }
        XCTAssertNotEqual(other, Array(batch[(4 * count)..<(5 * count)]))
        XCTAssertNotEqual(Array(batch[0..<count]), Array(batch[count..<(2 * count)]))
    }

    func testShuffleIsADeterministicPermutation() {
        var a = Array(0..<1000), b = a
        var r1 = Philox4x32(seed: 9), r2 = Philox4x32(seed: 9)
        r1.shuffle(&a)
        r2.shuffle(&b)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.sorted(), Array(0..<1000))
        XCTAssertNotEqual(a, Array(0..<1000))
        var c = Array(0..<1000)
        var r3 = Philox4x32(seed: 10)
        r3.shuffle(&c)
        XCTAssertNotEqual(a, c)
        var empty: [Int] = [], single = [5]
        r3.shuffle(&empty)
        r3.shuffle(&single)
        XCTAssertEqual(single, [5])
        // Every position is roughly uniform: where element 0 lands over many shuffles of 4.
        var landing = [Int](repeating: 0, count: 4)
        for _ in 0..<8000 {
            var s = [0, 1, 2, 3]
            r3.shuffle(&s)
            landing[s.firstIndex(of: 0)!] += 1
        }
        for l in landing { XCTAssertEqual(Double(l), 2000, accuracy: 200) }
    }

    func testNextIntIsInRangeAndRoughlyUniform() {
        var rng = Philox4x32(seed: 123)
        // n = 3 * 2^30: plain `x % n` would make the low third twice as likely as the rest.
        let n = 3 << 30
        var low = 0
        let draws = 30_000
        for _ in 0..<draws {
            let v = rng.nextInt(below: n)
            XCTAssertTrue(v >= 0 && v < n)
            if v < 1 << 30 { low += 1 }
        }
        XCTAssertEqual(Double(low) / Double(draws), 1.0 / 3.0, accuracy: 0.02)
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { counts[rng.nextInt(below: 7)] += 1 }
        for c in counts { XCTAssertEqual(Double(c), 10_000, accuracy: 400) }
        XCTAssertEqual(rng.nextInt(below: 1), 0)
        let big = (1 << 40) + 3
        for _ in 0..<100 { let v = rng.nextInt(below: big); XCTAssertTrue(v >= 0 && v < big) }
    }
}

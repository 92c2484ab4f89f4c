import Foundation

/// Philox4x32-10, the counter-based generator of Random123 (Salmon et al., SC'11), bit-for-bit.
///
/// A stream is keyed by `seed` (key word 0 = low 32 bits, word 1 = high 32 bits) and numbered by
/// `stream` (counter words 2, 3 = low, high); counter words 0, 1 hold the 64-bit block index. Each
/// block yields four 32-bit words, handed out in order. Everything is a pure function of
/// (seed, stream, position), so results never depend on threads, batching or platform.
public struct Philox4x32: Sendable {
    @usableFromInline static let m0: UInt32 = 0xD251_1F53
    @usableFromInline static let m1: UInt32 = 0xCD9E_8D57
    @usableFromInline static let w0: UInt32 = 0x9E37_79B9
    @usableFromInline static let w1: UInt32 = 0xBB67_AE85

    /// Raw block function: counter (4 words), key (2 words) -> 4 words. Ten rounds, as Random123's
    /// `philox4x32_R(10, ctr, key)`.
    @inlinable
    public static func block(counter: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32))
        -> (UInt32, UInt32, UInt32, UInt32)
    {
        var (c0, c1, c2, c3) = counter
        var (k0, k1) = key
        for round in 0..<10 {
            if round > 0 {
                k0 &+= w0
                k1 &+= w1
            }
            let p0 = UInt64(m0) &* UInt64(c0)
            let p1 = UInt64(m1) &* UInt64(c2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            c0 = hi1 ^ c1 ^ k0
            c1 = lo1
            c2 = hi0 ^ c3 ^ k1
            c3 = lo0
        }
        return (c0, c1, c2, c3)
    }

    /// Key words (seed low, seed high).
    public let key: (UInt32, UInt32)
    /// Counter words 2, 3 (stream low, stream high).
    public let streamWords: (UInt32, UInt32)
    /// Index of the next block to generate.
    @usableFromInline var blockIndex: UInt64 = 0
    /// The current block's four outputs and how many of them have been used (4 = none left).
    @usableFromInline var buffer: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    @usableFromInline var used = 4
    /// Second value of the last Box-Muller pair, not yet handed out.
    @usableFromInline var spareNormal: Float? = nil

    /// A stream: key = seed (low word, high word), counter words 2,3 = stream (low, high),
    /// words 0,1 = block index (starting at 0).
    public init(seed: UInt64, stream: UInt64 = 0) {
        key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        streamWords = (UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32))
    }

    /// Next 32-bit word of the stream: block 0 words 0..3, then block 1, and so on.
    @inlinable
    public mutating func nextUInt32() -> UInt32 {
        if used == 4 {
            buffer = Self.block(
                counter: (
                    UInt32(truncatingIfNeeded: blockIndex), UInt32(truncatingIfNeeded: blockIndex >> 32),
                    streamWords.0, streamWords.1
                ),
                key: key)
            blockIndex &+= 1
            used = 0
        }
        defer { used += 1 }
        switch used {
        case 0: return buffer.0
        case 1: return buffer.1
        case 2: return buffer.2
        default: return buffer.3
        }
    }

    /// Uniform in the open interval (0, 1): `((u >> 9) + 0.5) * 2^-23` for the next word `u`, the
    /// midpoints of 2^23 equal cells, every one exactly representable, so never 0 or 1.
    /// (`((u >> 8) + 0.5) * 2^-24` needs 25 significant bits and rounds to exactly 1.0 in Float for
    /// the top word; the Double uniforms behind `nextNormal` keep that 24-bit form.)
    @inlinable
    public mutating func nextUniform() -> Float {
        (Float(nextUInt32() >> 9) + 0.5) * 0x1p-23
    }

    /// Uniform in (0, 1) as a Double: `((u >> 8) + 0.5) * 2^-24`, exact, in [2^-25, 1 - 2^-25].
    @inlinable
    mutating func nextUniformDouble() -> Double {
        (Double(nextUInt32() >> 8) + 0.5) * 0x1p-24
    }

    /// Standard normal by Box-Muller on two Double uniforms `((u >> 8) + 0.5) * 2^-24`: with
    /// `r = sqrt(-2 ln u1)`, `t = 2π u2`, the pair is `(r cos t, r sin t)`, rounded to Float. Each pair gives
    /// two normals (cos then sin); the second is kept for the next call.
    @inlinable
    public mutating func nextNormal() -> Float {
        if let s = spareNormal {
            spareNormal = nil
            return s
        }
        let (a, b) = nextNormalPair()
        spareNormal = b
        return a
    }

    /// Two independent standard normals from two fresh uniforms (ignores and keeps any spare).
    @inlinable
    mutating func nextNormalPair() -> (Float, Float) {
        let u1 = nextUniformDouble(), u2 = nextUniformDouble()
        let r = (-2.0 * Foundation.log(u1)).squareRoot()
        let t = 2.0 * Double.pi * u2
        return (Float(r * Foundation.cos(t)), Float(r * Foundation.sin(t)))
    }

    /// Uniform integer in `0..<n`, unbiased: words from the top of the range that would favour small
    /// results are rejected and redrawn. Requires `n > 0`.
    @inlinable
    public mutating func nextInt(below n: Int) -> Int {
        precondition(n > 0, "nextInt(below:) needs n > 0, got \(n)")
        if n <= 1 << 32 {
            let m = UInt64(n)
            let limit = (1 << 32) - ((1 << 32) % m)  // largest multiple of n not above 2^32
            while true {
                let x = UInt64(nextUInt32())
                if x < limit { return Int(x % m) }
            }
        }
        let m = UInt64(n)
        let limit = UInt64.max - (UInt64.max % m + 1) % m  // accept x <= limit
        while true {
            let x = UInt64(nextUInt32()) | (UInt64(nextUInt32()) << 32)
            if x <= limit { return Int(x % m) }
        }
    }

    /// Fisher-Yates shuffle in place (from the last element down, each swapped with a uniform pick
    /// among itself and the ones before it).
    public mutating func shuffle<T>(_ a: inout [T]) {
        var i = a.count - 1
        while i > 0 {
            let j = nextInt(below: i + 1)
            if j != i { a.swapAt(i, j) }
            i -= 1
        }
    }

    /// Fills `out` with standard normals; the same numbers successive `nextNormal()` calls would give.
    public mutating func fillNormal(_ out: UnsafeMutableBufferPointer<Float>) {
        var i = 0
        let n = out.count
        if i < n, let s = spareNormal {
            out[i] = s
            spareNormal = nil
            i += 1
        }
        while i + 1 < n {
            let (a, b) = nextNormalPair()
            out[i] = a
            out[i + 1] = b
            i += 2
        }
        if i < n { out[i] = nextNormal() }
    }

    /// Fills `out` with uniforms in (0, 1); the same numbers successive `nextUniform()` calls would give.
    public mutating func fillUniform(_ out: UnsafeMutableBufferPointer<Float>) {
        for i in 0..<out.count { out[i] = nextUniform() }
    }
}

/// Per-sample noise that does not depend on how samples are batched.
public enum SampleNoise {
    /// Standard normals for sample `index` of `seed`: a pure function of (seed, index, count), whatever
    /// batch the sample is in. It is the start of the Philox stream `(seed, stream: index)`.
    public static func fill(seed: UInt64, index: UInt64, _ out: UnsafeMutableBufferPointer<Float>) {
        var rng = Philox4x32(seed: seed, stream: index)
        rng.fillNormal(out)
    }
}

import Foundation

/// Vectorised float math for the elementwise kernels (SIMD8, whatever the target's vector width).
public enum VMath {
    public typealias V = SIMD8<Float>

    /// e^x to about 1 ulp for x in [-87, 88] (inputs are clamped there): Cephes `expf`'s range
    /// reduction (x = n ln2 + r, |r| <= ln2/2, ln2 split in two) and degree-6 polynomial, with
    /// 2^n built in the exponent bits.
    @inlinable @inline(__always)
    public static func exp(_ x: V) -> V {
        var x = x.replacing(with: 88, where: x .> 88)
        x.replace(with: -87, where: x .< -87)
        let magic: Float = 12582912  // 1.5 * 2^23: adding it rounds to an integer in the low bits
        let kf = x * 1.44269504088896341 + magic
        let n = kf - magic
        var r = x - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * (r * r) + r + 1
        let bits = (unsafeBitCast(kf, to: SIMD8<UInt32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: V.self)
    }

    /// 1 / (1 + e^-x).
    @inlinable @inline(__always)
    public static func sigmoid(_ x: V) -> V { 1 / (1 + exp(-x)) }

    /// x * sigmoid(x).
    @inlinable @inline(__always)
    public static func silu(_ x: V) -> V { x / (1 + exp(-x)) }

    /// silu'(x) = s (1 + x (1 - s)), s = sigmoid(x).
    @inlinable @inline(__always)
    public static func siluGrad(_ x: V) -> V {
        let s = sigmoid(x)
        return s * (1 + x * (1 - s))
    }

    @inlinable @inline(__always)
    public static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inlinable @inline(__always)
    public static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// The first `n` (< 8) elements of `p`, zero-padded.
    @inlinable @inline(__always)
    public static func loadPartial(_ p: UnsafePointer<Float>, _ n: Int) -> V {
        var v = V()
        for i in 0..<n { v[i] = p[i] }
        return v
    }

    @inlinable @inline(__always)
    public static func storePartial(_ v: V, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { p[i] = v[i] }
    }

    /// Sum of `n` floats (eight partial sums; fixed order).
    @inlinable
    public static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var a0 = V(), a1 = V()
        var i = 0
        while i + 16 <= n { a0 += load(p + i); a1 += load(p + i + 8); i += 16 }
        if i + 8 <= n { a0 += load(p + i); i += 8 }
        if i < n { a1 += loadPartial(p + i, n - i) }
        return (a0 + a1).sum()
    }

    /// (sum of d, sum of d^2) for d = p[i] - shift over `n` floats: both moments in one pass; with
    /// `shift` a value of the data, E[d^2] - E[d]^2 does not cancel catastrophically.
    @inlinable
    public static func shiftedMoments(_ p: UnsafePointer<Float>, _ n: Int, shift: Float) -> (Float, Float) {
        var s0 = V(), s1 = V(), q0 = V(), q1 = V()
        let m = V(repeating: shift)
        var i = 0
        while i + 16 <= n {
            let d0 = load(p + i) - m, d1 = load(p + i + 8) - m
            s0 += d0; s1 += d1
            q0 += d0 * d0; q1 += d1 * d1
            i += 16
        }
        if i + 8 <= n { let d = load(p + i) - m; s0 += d; q0 += d * d; i += 8 }
        if i < n {
            var d = loadPartial(p + i, n - i) - m
            d.replace(with: 0, where: SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) .>= Int32(n - i))
            s1 += d; q1 += d * d
        }
        return ((s0 + s1).sum(), (q0 + q1).sum())
    }

    /// Sum of (p[i] - mu)^2 over `n` floats.
    @inlinable
    public static func sumSquaredDeviation(_ p: UnsafePointer<Float>, _ n: Int, mean mu: Float) -> Float {
        var a0 = V(), a1 = V()
        let m = V(repeating: mu)
        var i = 0
        while i + 16 <= n {
            let d0 = load(p + i) - m, d1 = load(p + i + 8) - m
            a0 += d0 * d0; a1 += d1 * d1
            i += 16
        }
        if i + 8 <= n { let d = load(p + i) - m; a0 += d * d; i += 8 }
        if i < n {
            var d = loadPartial(p + i, n - i) - m
            d.replace(with: 0, where: SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) .>= Int32(n - i))
            a1 += d * d
        }
        return (a0 + a1).sum()
    }
}

/// SiLU, x * sigmoid(x), and its derivative, as single passes over memory.
public enum SiLU {
    /// y = silu(x). `y` may equal `x`.
    @inlinable
    public static func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            VMath.store(VMath.silu(VMath.load(x + i)), y + i)
            i += 8
        }
        if i < count { VMath.storePartial(VMath.silu(VMath.loadPartial(x + i, count - i)), y + i, count - i) }
    }

    /// dx = dy * silu'(x) where silu'(x) = s (1 + x (1 - s)), s = sigmoid(x). `dx` may equal `dy`.
    @inlinable
    public static func backward(
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        var i = 0
        while i + 8 <= count {
            VMath.store(VMath.load(dy + i) * VMath.siluGrad(VMath.load(x + i)), dx + i)
            i += 8
        }
        if i < count {
            let n = count - i
            VMath.storePartial(VMath.loadPartial(dy + i, n) * VMath.siluGrad(VMath.loadPartial(x + i, n)), dx + i, n)
        }
    }
}

/// An elementwise activation: y = a(x) and dx = dy * a'(x), each a single pass over memory.
public protocol ElementwiseActivation {
    static func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int)
    static func backward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int)
}

extension SiLU: ElementwiseActivation {}

/// An activation layer that keeps its own output and input gradient (used where no norm precedes
/// it). Forward keeps a pointer to `x`, which must stay valid until `backward`.
public final class ActivationLayer<A: ElementwiseActivation>: @unchecked Sendable {
    public let out = Buffer()
    public let dIn = Buffer()
    private var x: UnsafePointer<Float>?

    public init() {}

    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, count: Int) -> UnsafeMutablePointer<Float> {
        self.x = x
        out.resize(count)
        A.forward(x, out.ptr, count: count)
        return out.ptr
    }

    @discardableResult
    public func backward(_ dy: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        guard let x else { preconditionFailure("\(A.self).backward before forward") }
        dIn.resize(out.count)
        A.backward(x: x, dy: dy, dx: dIn.ptr, count: out.count)
        return dIn.ptr
    }
}

public typealias SiLULayer = ActivationLayer<SiLU>

import Foundation

/// SiLU, x * sigmoid(x), and its derivative, as single passes over memory.
public enum SiLU {
    /// y = silu(x). `y` may equal `x`.
    @inlinable
    public static func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let v = x[i]
            y[i] = v / (1 + expf(-v))
        }
    }

    /// dx = dy * silu'(x) where silu'(x) = s (1 + x (1 - s)), s = sigmoid(x). `dx` may equal `dy`.
    @inlinable
    public static func backward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let v = x[i]
            let s = 1 / (1 + expf(-v))
            dx[i] = dy[i] * s * (1 + v * (1 - s))
        }
    }
}

/// A SiLU layer that keeps its own output and input gradient (used where no norm precedes it).
public final class SiLULayer: @unchecked Sendable {
    public let out = Buffer()
    public let dIn = Buffer()
    private var x: UnsafePointer<Float>?

    public init() {}

    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, count: Int) -> UnsafeMutablePointer<Float> {
        self.x = x
        out.resize(count)
        SiLU.forward(x, out.ptr, count: count)
        return out.ptr
    }

    @discardableResult
    public func backward(_ dy: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        guard let x else { preconditionFailure("SiLU.backward before forward") }
        dIn.resize(out.count)
        SiLU.backward(x: x, dy: dy, dx: dIn.ptr, count: out.count)
        return dIn.ptr
    }
}

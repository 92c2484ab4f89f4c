/// ReLU, max(x, 0), and its derivative (dy where x > 0, else 0), as single passes over memory.
public enum ReLU {
    /// y = max(x, 0). `y` may equal `x`.
    @inlinable
    public static func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] = max(x[i], 0) }
    }

    /// dx = dy where x > 0, else 0 (the subgradient at 0 is 0, as in PyTorch). `dx` may equal `dy`.
    @inlinable
    public static func backward(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { dx[i] = x[i] > 0 ? dy[i] : 0 }
    }
}

/// A ReLU layer that keeps its output and input gradient.
public final class ReLULayer: @unchecked Sendable {
    public let out = Buffer()
    public let dIn = Buffer()
    private var x: UnsafePointer<Float>?

    public init() {}

    /// y = max(x, 0); `x` must stay valid until `backward`.
    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, count: Int) -> UnsafeMutablePointer<Float> {
        self.x = x
        out.resize(count)
        ReLU.forward(x, out.ptr, count: count)
        return out.ptr
    }

    @discardableResult
    public func backward(_ dy: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        guard let x else { preconditionFailure("ReLU.backward before forward") }
        dIn.resize(out.count)
        ReLU.backward(x: x, dy: dy, dx: dIn.ptr, count: out.count)
        return dIn.ptr
    }
}

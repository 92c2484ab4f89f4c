/// ReLU, max(x, 0), and its derivative (dy where x > 0, else 0), as single passes over memory.
public enum ReLU {
    /// y = max(x, 0). `y` may equal `x`.
    @inlinable
    public static func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] = max(x[i], 0) }
    }

    /// dx = dy where x > 0, else 0 (the subgradient at 0 is 0, as in PyTorch). `dx` may equal `dy`.
    @inlinable
    public static func backward(
        x: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        for i in 0..<count { dx[i] = x[i] > 0 ? dy[i] : 0 }
    }
}

extension ReLU: ElementwiseActivation {}

public typealias ReLULayer = ActivationLayer<ReLU>

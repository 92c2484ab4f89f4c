import TensorCore

/// 2x2 average pooling (stride 2) over stacks of planes `[P, H, W]` (CBHW activations: P = C*B),
/// keeping its output and input gradient. H and W must be even.
public final class AvgPool2x2Layer: @unchecked Sendable {
    public let out = Buffer()
    public let dIn = Buffer()
    private var planes = 0, height = 0, width = 0

    public init() {}

    /// y [P, H/2, W/2] from x [P, H, W].
    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, planes: Int, height: Int, width: Int) -> UnsafeMutablePointer<Float>
    {
        self.planes = planes
        self.height = height
        self.width = width
        out.resize(planes * (height / 2) * (width / 2))
        Resample.avgPool2x2(x, planes: planes, height: height, width: width, y: out.ptr)
        return out.ptr
    }

    /// dx [P, H, W] from dy [P, H/2, W/2] (overwrites `dIn`).
    @discardableResult
    public func backward(_ dy: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        dIn.resize(planes * height * width)
        dIn.zero()
        Resample.avgPool2x2Backward(dy: dy, planes: planes, height: height, width: width, dx: dIn.ptr)
        return dIn.ptr
    }
}

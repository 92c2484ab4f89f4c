/// A contiguous float32 tensor in row-major order, with its shape checked on construction.
///
/// `Tensor` is a value type (copy-on-write through its `storage` array). Hot loops reach the
/// elements through `withUnsafeBufferPointer` / `withUnsafeMutableBufferPointer`.
public struct Tensor: Sendable, Equatable {
    /// Dimensions, outermost first. A scalar has shape `[]` and one element.
    public private(set) var shape: [Int]
    /// The elements, `shape.reduce(1, *)` of them.
    public var storage: [Float]

    /// A tensor of the given shape filled with `value`.
    public init(shape: [Int], repeating value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.storage = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor that takes `storage` as its elements; throws if the count does not match `shape`.
    public init(shape: [Int], storage: [Float]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorCoreError(.shapeMismatch, "negative dimension in shape \(shape)")
        }
        let n = shape.reduce(1, *)
        guard n == storage.count else {
            throw TensorCoreError(.shapeMismatch, "shape \(shape) needs \(n) elements, got \(storage.count)")
        }
        self.shape = shape
        self.storage = storage
    }

    /// Number of elements.
    @inlinable public var count: Int { storage.count }
    /// Number of dimensions.
    @inlinable public var rank: Int { shape.count }

    /// The same elements under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        try Tensor(shape: newShape, storage: storage)
    }

    /// Throws a `shapeMismatch` error naming `what` unless the shape equals `expected`.
    public func checkShape(_ expected: [Int], _ what: String) throws {
        guard shape == expected else {
            throw TensorCoreError(.shapeMismatch, "\(what): expected shape \(expected), got \(shape)")
        }
    }

    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try storage.withUnsafeBufferPointer(body)
    }

    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        try storage.withUnsafeMutableBufferPointer(body)
    }
}

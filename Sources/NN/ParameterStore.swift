import TensorCore

/// One named parameter tensor inside the flat buffers.
public struct ParameterEntry: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
    /// Inputs per output (for initialisation bounds): product of all dims after the first.
    public var fanIn: Int { shape.count > 1 ? shape.dropFirst().reduce(1, *) : shape.first ?? 1 }
}

/// How parameters are initialised, per tensor.
public enum ParameterInit: Sendable, Equatable {
    /// Uniform in +-1/sqrt(fanIn) (PyTorch's default for Linear and Conv2d).
    case uniformFanIn(fanIn: Int)
    case constant(Float)
}

/// All parameters of a network in one flat buffer, with named views (llm.c style), plus a gradient
/// buffer of the same layout. The optimiser, EMA and checkpoints are single loops over these.
public final class ParameterStore: @unchecked Sendable {
    public private(set) var entries: [ParameterEntry] = []
    private var index: [String: Int] = [:]
    private var inits: [ParameterInit] = []
    /// Parameter values, `count` of them, at a stable address between registrations.
    public let values = Buffer()
    /// Gradients, same layout. Backward passes accumulate into it; call `zeroGrad()` per step.
    public let grads = Buffer()

    /// Execution mode of the network that owns this store (every layer of a network shares its
    /// store): when true, forward passes compute each sample with matrix products of the same shape
    /// whatever the batch, so a sample's output is bitwise independent of what shares its batch.
    /// Serving sets it; training leaves it off (whole-batch GEMMs are faster).
    public var batchInvariant = false

    /// Set by a server once a network is loaded: its parameter values will not change again, so
    /// layers may keep them in a faster layout (oneDNN's packed convolution weights, made on first
    /// use). Values written after setting it are not seen by those layers.
    public var weightsFrozen = false

    /// When false, backward passes through the network that owns this store compute input gradients
    /// only and leave `grads` untouched (no weight-gradient products): for a frozen network that a
    /// loss is differentiated through (the teacher in SiD, the classifier in a generator step).
    public var accumulatesGradients = true

    /// Runs `body` with `accumulatesGradients` off (input gradients only), then restores it.
    public func frozen<T>(_ body: () throws -> T) rethrows -> T {
        let was = accumulatesGradients
        accumulatesGradients = false
        defer { accumulatesGradients = was }
        return try body()
    }

    /// While true (inside `ParameterStore.plannedCount`), stores made on this task record their
    /// layout but allocate nothing: a network can be sized before it is built.
    @TaskLocal static var planning = false
    /// False for a store made by `plannedCount`: layout only, no values.
    public let allocates: Bool

    public init() { allocates = !Self.planning }

    /// Total number of scalars.
    public private(set) var count = 0

    /// The number of parameters of the network `build` makes, counted without allocating them (the
    /// network it builds is a layout only and must not be run). Lets a loader refuse an
    /// architecture from an untrusted file before its size is allocated.
    public static func plannedCount(_ build: () throws -> any ParameterOwner) rethrows -> Int {
        try plannedEntries(build).reduce(0) { $0 + $1.count }
    }

    /// The named tensors (names, shapes, offsets) of the network `build` makes, without allocating.
    public static func plannedEntries(_ build: () throws -> any ParameterOwner) rethrows -> [ParameterEntry] {
        try $planning.withValue(true) { try build().parameters.entries }
    }

    /// Start of the values of the tensor at `offset` (layers keep offsets, not pointers).
    @inlinable public func value(_ offset: Int) -> UnsafeMutablePointer<Float> { values.ptr + offset }
    /// Start of the gradient of the tensor at `offset`.
    @inlinable public func grad(_ offset: Int) -> UnsafeMutablePointer<Float> { grads.ptr + offset }

    /// Registers a tensor and returns its offset. Called while a network is built.
    @discardableResult
    public func register(_ name: String, shape: [Int], initialiser: ParameterInit) -> Int {
        precondition(index[name] == nil, "parameter \(name) registered twice")
        let offset = count
        // Architecture fields are bounded by their configs' `validate`; this catches a bound missed.
        var size = 1
        for d in shape {
            let (p, o) = size.multipliedReportingOverflow(by: d)
            precondition(!o && d >= 0, "parameter \(name) shape \(shape) overflows")
            size = p
        }
        let (end, o) = offset.addingReportingOverflow(size)
        precondition(!o, "parameter count overflows at \(name)")
        let entry = ParameterEntry(name: name, shape: shape, offset: offset)
        index[name] = entries.count
        entries.append(entry)
        inits.append(initialiser)
        count = end
        // Values are set by `initialise` or `load` once the network is built; growth may drop them.
        if allocates {
            values.reserve(end)
            grads.reserve(end)
            values.resize(end)
            grads.resize(end)
        }
        return offset
    }

    public func entry(_ name: String) -> ParameterEntry? { index[name].map { entries[$0] } }

    /// Fills every tensor by its initialiser from the counter-based RNG (stream = tensor position).
    public func initialise(seed: UInt64) {
        guard allocates else { return }
        let v = values.ptr
        do {
            for (i, e) in entries.enumerated() {
                switch inits[i] {
                case .constant(let c):
                    for j in 0..<e.count { v[e.offset + j] = c }
                case .uniformFanIn(let fanIn):
                    let bound = 1 / Float(fanIn).squareRoot()
                    var rng = Philox4x32(seed: seed, stream: UInt64(i))
                    for j in 0..<e.count { v[e.offset + j] = (2 * rng.nextUniform() - 1) * bound }
                }
            }
        }
    }

    public func zeroGrad() { grads.zero() }

    /// The tensor `name` as a standalone value.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entry(name) else { throw NNError(.missingParameter, "no parameter named '\(name)'") }
        return try Tensor(shape: e.shape, storage: slice(e))
    }

    /// Named tensors in registration order (for checkpoints).
    public func namedTensors() -> [(String, Tensor)] {
        entries.map { e in (e.name, try! Tensor(shape: e.shape, storage: slice(e))) }
    }

    /// Loads every registered tensor from `lookup`; throws naming a missing or mis-shaped tensor.
    public func load(_ lookup: (String) -> Tensor?) throws {
        precondition(allocates, "a planned (layout-only) store cannot load values")
        for e in entries {
            guard let t = lookup(e.name) else {
                throw NNError(.missingParameter, "checkpoint has no tensor '\(e.name)' (shape \(e.shape))")
            }
            guard t.shape == e.shape else {
                throw NNError(
                    .shapeMismatch, "tensor '\(e.name)': expected shape \(e.shape), checkpoint has \(t.shape)")
            }
            t.withUnsafeBufferPointer { (values.ptr + e.offset).update(from: $0.baseAddress!, count: e.count) }
        }
    }

    /// Copies the values of every entry that `other` has under the same name and shape; returns
    /// the number of values copied (initialising part of a network from another, e.g. a
    /// classifier's encoder from the teacher).
    @discardableResult
    public func copyMatching(from other: ParameterStore) -> Int {
        var copied = 0
        for e in entries {
            guard let o = other.entry(e.name), o.shape == e.shape else { continue }
            (values.ptr + e.offset).update(from: other.values.ptr + o.offset, count: e.count)
            copied += e.count
        }
        return copied
    }

    private func slice(_ e: ParameterEntry) -> [Float] {
        Array(UnsafeBufferPointer(start: values.ptr + e.offset, count: e.count))
    }

    /// The gradient of `name` as an array (tests, diagnostics).
    public func gradient(_ name: String) -> [Float]? {
        entry(name).map { Array(UnsafeBufferPointer(start: grads.ptr + $0.offset, count: $0.count)) }
    }
}

/// Anything whose parameters live in one `ParameterStore` (denoisers, classifiers, evaluators).
public protocol ParameterOwner: AnyObject {
    var parameters: ParameterStore { get }
}

import Synchronization

/// A growable float32 scratch buffer owned by one layer: allocated once per batch shape and reused,
/// so a training step or a served batch allocates nothing once shapes are stable.
///
/// Storage starts on a 64-byte boundary (a cache line, one AVX-512 vector): oneDNN's kernels read
/// and write these buffers directly, and malloc's large blocks start 16 bytes past a page, so every
/// vector of theirs would straddle two cache lines.
///
/// Not thread-safe: each worker owns its own layers and therefore its own buffers.
public final class Buffer: @unchecked Sendable {
    /// Start of the storage; valid until the next `resize` that grows it.
    public private(set) var ptr: UnsafeMutablePointer<Float>
    /// Elements currently in use.
    public private(set) var count: Int
    private var capacity: Int

    /// Floats held by every live buffer of the process (tests weigh `ActivationBound` against it).
    public static var liveFloats: Int { live.load(ordering: .relaxed) }
    private static let live = Atomic<Int>(0)

    public init(count: Int = 0) {
        capacity = max(count, 1)
        ptr = Self.allocate(capacity)
        ptr.initialize(repeating: 0, count: capacity)
        self.count = count
        Self.live.add(capacity, ordering: .relaxed)
    }

    deinit {
        ptr.deallocate()
        Self.live.subtract(capacity, ordering: .relaxed)
    }

    private static func allocate(_ n: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: n * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: n)
    }

    /// Makes room for `n` elements. Contents are unspecified after growth.
    public func resize(_ n: Int) {
        if n > capacity {
            ptr.deallocate()
            Self.live.add(n - capacity, ordering: .relaxed)
            capacity = n
            ptr = Self.allocate(n)
            ptr.initialize(repeating: 0, count: n)
        }
        count = n
    }

    /// Makes room for at least `n` elements without changing `count`, growing to at least twice the
    /// old capacity: a buffer grown one piece at a time (a parameter store while its network
    /// registers tensors) is reallocated O(log n) times, not once per piece. Contents are
    /// unspecified after growth.
    public func reserve(_ n: Int) {
        guard n > capacity else { return }
        let (twice, o) = capacity.multipliedReportingOverflow(by: 2)
        let inUse = count
        resize(max(n, o ? n : twice))
        count = inUse
    }

    /// Sets the elements in use to zero.
    public func zero() { ptr.update(repeating: 0, count: count) }

    /// Copies the elements in use into an array.
    public var array: [Float] { Array(UnsafeBufferPointer(start: ptr, count: count)) }

    /// Sets size and contents from `values`.
    public func assign(_ values: [Float]) {
        resize(values.count)
        values.withUnsafeBufferPointer { ptr.update(from: $0.baseAddress!, count: values.count) }
    }
}

import Dispatch
import Synchronization

/// The engine instances of one loaded model version (Triton's instance group): each instance is a
/// network replica with its own serial queue, activations and scratch, so instances run batches at
/// the same time without sharing mutable state. A call takes free instances, runs on their queues
/// and gives them back; with none free it waits (first come, first served).
final class InstancePool<Instance: AnyObject & Sendable>: Sendable {
    private struct State {
        var free: [Int]
        var waiters: [(want: Int, continuation: CheckedContinuation<[Int], Never>)] = []

        /// Up to `most` free instances, taken out (nil when none is free).
        mutating func take(most: Int) -> [Int]? {
            guard !free.isEmpty else { return nil }
            let n = min(most, free.count)
            defer { free.removeLast(n) }
            return Array(free.suffix(n))
        }
    }

    let instances: [Instance]
    private let queues: [DispatchQueue]
    private let state: Mutex<State>

    init(_ instances: [Instance], label: String) {
        precondition(!instances.isEmpty, "an instance pool needs at least one instance")
        self.instances = instances
        queues = instances.indices.map { DispatchQueue(label: "\(label).\($0)", qos: .userInitiated) }
        state = Mutex(State(free: Array(instances.indices.reversed())))
    }

    var count: Int { instances.count }

    /// Takes between 1 and `most` free instances (as many as are free now), waiting for one if none is.
    func acquire(most: Int) async -> [Int] {
        let most = max(1, most)
        let now: [Int]? = state.withLock { s in s.waiters.isEmpty ? s.take(most: most) : nil }
        if let now { return now }
        return await withCheckedContinuation { c in
            // Registered under the lock; a release between the check above and here sees the waiter.
            let handed: [Int]? = state.withLock { s in
                if s.waiters.isEmpty, let got = s.take(most: most) { return got }
                s.waiters.append((most, c))
                return nil
            }
            if let handed { c.resume(returning: handed) }
        }
    }

    /// Gives instances back; waiting callers take them in arrival order.
    func release(_ indices: [Int]) {
        let wake: [(CheckedContinuation<[Int], Never>, [Int])] = state.withLock { s in
            s.free.append(contentsOf: indices)
            var out: [(CheckedContinuation<[Int], Never>, [Int])] = []
            while let w = s.waiters.first, let got = s.take(most: w.want) {
                s.waiters.removeFirst()
                out.append((w.continuation, got))
            }
            return out
        }
        for (c, given) in wake { c.resume(returning: given) }
    }

    /// Runs `body` on instance `index`'s queue (never on Swift's cooperative threads).
    func run<T: Sendable>(on index: Int, _ body: @escaping @Sendable (Instance) throws -> T) async throws -> T {
        let instance = instances[index]
        return try await withCheckedThrowingContinuation { cont in
            queues[index].async { cont.resume(with: Result { try body(instance) }) }
        }
    }

    /// Splits `n` items over up to `most` free instances (parts of at least `minPart` items), runs
    /// `body(instance, range)` for each part at once and returns the parts' results in order.
    func split<T: Sendable>(
        _ n: Int, minPart: Int, most: Int = Int.max,
        _ body: @escaping @Sendable (Instance, Range<Int>) throws -> T
    ) async throws -> [T] {
        let want = max(1, min(most, n / max(1, minPart)))
        let taken = await acquire(most: want)
        defer { release(taken) }
        let parts = taken.count
        if parts == 1 { return [try await run(on: taken[0]) { try body($0, 0..<n) }] }
        let ranges = (0..<parts).map { k in (n * k / parts)..<(n * (k + 1) / parts) }
        return try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for (k, r) in ranges.enumerated() {
                let index = taken[k]
                group.addTask { (k, try await self.run(on: index) { try body($0, r) }) }
            }
            var out = [T?](repeating: nil, count: parts)
            for try await (k, value) in group { out[k] = value }
            return out.map { $0! }
        }
    }
}

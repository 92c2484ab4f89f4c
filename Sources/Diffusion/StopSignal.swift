import Synchronization

/// A flag that a long sampling call checks between network evaluations: set it (from any thread)
/// and the call ends with `CancellationError` at its next check, within one network evaluation.
/// The daemon sets it when a caller stops waiting (a warm-up past its limit), so abandoned work
/// does not keep a core busy or run on while the process exits.
public final class StopSignal: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public var isSet: Bool { flag.load(ordering: .relaxed) }

    public func set() { flag.store(true, ordering: .relaxed) }

    /// Throws `CancellationError` once set.
    func check() throws(CancellationError) { if isSet { throw CancellationError() } }
}

extension StopSignal? {
    func check() throws(CancellationError) { try self?.check() }
}

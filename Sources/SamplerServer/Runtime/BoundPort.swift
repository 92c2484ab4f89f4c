import Synchronization

/// The port a listener ended up on, for whoever waits on it: settled once with the port or the
/// bind failure.
final class BoundPort: Sendable {
    private let state = Mutex<(outcome: Result<Int, any Error>?, waiters: [CheckedContinuation<Int, any Error>])>(
        (nil, []))

    /// The port once bound; throws when binding failed.
    func value() async throws -> Int {
        try await withCheckedThrowingContinuation { c in
            let outcome = state.withLock { s -> Result<Int, any Error>? in
                if s.outcome == nil { s.waiters.append(c) }
                return s.outcome
            }
            if let outcome { c.resume(with: outcome) }
        }
    }

    /// Settles the port (the first call wins).
    func settle(_ outcome: Result<Int, any Error>) {
        let waiters = state.withLock { s -> [CheckedContinuation<Int, any Error>] in
            guard s.outcome == nil else { return [] }
            s.outcome = outcome
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(with: outcome) }
    }
}

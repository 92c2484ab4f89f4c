import NIOCore
import Synchronization

/// The HTTP door's answer to a client that goes away: a computing route (infer, samples) runs its
/// work as a child task that is cancelled when the client's connection closes, so its queued
/// samples leave the batcher as a cancelled gRPC call's do (`onestep_request_failure_total
/// {reason="cancelled"}`) instead of being computed for nobody. Hummingbird does not cancel a
/// handler when its connection closes, and it allows half-closed connections, so a client that
/// hangs up only half-closes it: `InputClosedHandler` closes such a connection (as nginx does: a
/// client's end of input during a request is an abort), and the close future tells the route.
enum ClientDisconnect {
    /// `body`, cancelled when `closed` completes first (then it throws `cancelled`: status 499,
    /// which no client reads).
    static func cancelling<T: Sendable>(
        on closed: EventLoopFuture<Void>, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                await wait(closed)
                return nil
            }
            defer { group.cancelAll() }
            if let first = try await group.next(), let result = first { return result }
            throw ServerError(.cancelled, "the client closed the connection before the response")
        }
    }

    /// Returns when `future` completes or the task is cancelled, whichever comes first.
    static func wait(_ future: EventLoopFuture<Void>) async {
        let gate = Gate()
        future.whenComplete { _ in gate.open() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { gate.park($0) }
        } onCancel: {
            gate.open()
        }
    }

    /// In the HTTP/1 pipeline: closes the connection when the client ends its input (FIN), so
    /// the close future completes while a handler still runs. One per connection.
    final class InputClosedHandler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .some(.inputClosed) = event as? ChannelEvent { context.close(promise: nil) }
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// A one-shot gate: the parked continuation resumes once, whether the gate opens before or
    /// after it parks.
    final class Gate: Sendable {
        private let state = Mutex<(waiter: CheckedContinuation<Void, Never>?, open: Bool)>((nil, false))

        func park(_ c: CheckedContinuation<Void, Never>) {
            let now = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiter = c
                return false
            }
            if now { c.resume() }
        }

        func open() {
            state.withLock { s -> CheckedContinuation<Void, Never>? in
                s.open = true
                defer { s.waiter = nil }
                return s.waiter
            }?.resume()
        }
    }
}

import GRPCCore
import GRPCNIOTransportHTTP2
import Metrics
import Synchronization

/// The HTTP/2 server transport with one gap closed: an RPC whose stream the client resets before
/// the transport has attached its cancellation handle is still cancelled.
///
/// grpc-swift-nio-transport 2.9.2 attaches an RPC's cancellation handle to its stream's channel
/// handler from a task queued on the event loop after the RPC's handler task has started
/// (`CommonHTTP2ServerTransport.handleStream`). When the client's RST_STREAM closes the stream
/// first, the channel handler is already gone, the attachment is skipped, and the RPC runs with a
/// handle nothing ever cancels: under load (hundreds of streams opened and reset at once, the
/// HTTP/2 "rapid reset" pattern) whole requests were computed for callers that had left.
///
/// This wrapper gives every RPC a handle of its own, cancelled when the transport's is, and also
/// when the stream's response writer reports the stream closed. The writer is probed with an
/// empty write (no bytes reach the wire; a closed stream's writer throws at once) when the RPC
/// starts, a few times over its first quarter second, and every second after that.
///
/// Draining: `beginGracefulShutdown` sends GOAWAY and closes the listener, and the transport then
/// cancels every open RPC (its quiescing). Between `beginGracefulShutdown` and `endDrain` those
/// cancellations are held back, so calls in flight finish while clients already go elsewhere; a
/// client that resets its stream meanwhile is still seen by the probe. `endDrain` passes the held
/// cancellations on (long-lived streams such as health watches end then).
public struct ResetAwareTransport<Inner: ListeningServerTransport>: ListeningServerTransport {
    public typealias Bytes = Inner.Bytes
    public let inner: Inner

    public init(_ inner: Inner) { self.inner = inner }

    public var listeningAddress: SocketAddress {
        get async throws { try await inner.listeningAddress }
    }

    public func configure(context: GRPCServerContext) { inner.configure(context: context) }

    private let drain = DrainGate()

    public func beginGracefulShutdown() {
        drain.begin()
        inner.beginGracefulShutdown()
    }

    /// Passes on the cancellations the transport made since `beginGracefulShutdown`.
    public func endDrain() { drain.end() }

    /// When the writer is probed, counted from the RPC's start; then every `probeEvery`.
    static var probeSchedule: [Duration] {
        [.zero, .milliseconds(2), .milliseconds(10), .milliseconds(50), .milliseconds(250)]
    }
    static var probeEvery: Duration { .seconds(1) }
    /// RPCs this wrapper cancelled because their stream had closed (the transport's own
    /// cancellation did not reach them).
    static var closedEarly: Counter { Counter(label: "onestep_grpc_streams_closed_early_total") }

    public func listen(
        streamHandler: @escaping @Sendable (RPCStream<Inbound, Outbound>, ServerContext) async -> Void
    ) async throws {
        try await inner.listen { stream, context in
            let transportHandle = context.cancellation
            let forward = Forward(drain)
            // The transport's own cancellation (a reset after attachment, a timeout, shutdown) is
            // passed on synchronously, as the transport reports it.
            await withRPCCancellationHandler {
                await withServerContextRPCCancellationHandle { handle in
                    forward.attach(handle)
                    var context = context
                    context.cancellation = handle
                    await withTaskGroup(of: Void.self) { watcher in
                        watcher.addTask {
                            await Self.watchStream(stream.outbound, transport: transportHandle, cancel: handle)
                        }
                        await streamHandler(stream, context)
                        watcher.cancelAll()
                    }
                }
            } onCancelRPC: {
                forward.cancel()
            }
        }
    }

    /// Cancels `handle` once `outbound` reports its stream closed; returns when the task is cancelled.
    /// The transport cancels an attached handle as the reset is read, before the stream's writer
    /// closes, so a closed writer with `transport` not cancelled is the gap this type closes.
    static func watchStream(
        _ outbound: Outbound, transport: ServerContext.RPCCancellationHandle,
        cancel handle: ServerContext.RPCCancellationHandle
    ) async {
        let start = ContinuousClock.now
        var schedule = probeSchedule[...]
        while !Task.isCancelled {
            let next = schedule.popFirst().map { start + $0 } ?? ContinuousClock.now + probeEvery
            do { try await Task.sleep(until: next, clock: .continuous) } catch { return }
            do {
                try await outbound.write(contentsOf: [])
            } catch {
                // A cancelled probe says nothing about the stream (the RPC ended).
                if !Task.isCancelled {
                    if !transport.isCancelled { closedEarly.increment() }
                    handle.cancel()
                }
                return
            }
        }
    }

    /// The handle the transport's cancellation is passed to (made after the pass is registered).
    final class Forward: Sendable {
        private let state = Mutex<(handle: ServerContext.RPCCancellationHandle?, cancelled: Bool)>((nil, false))
        private let drain: DrainGate

        init(_ drain: DrainGate) { self.drain = drain }

        func attach(_ handle: ServerContext.RPCCancellationHandle) {
            let cancelled = state.withLock { s in
                s.handle = handle
                return s.cancelled
            }
            if cancelled { handle.cancel() }
        }

        func cancel() {
            if drain.hold(self) { return }
            let handle = state.withLock { s in
                s.cancelled = true
                return s.handle
            }
            handle?.cancel()
        }
    }

    /// Holds back the transport's cancellations while the server drains.
    final class DrainGate: Sendable {
        private let state = Mutex<(draining: Bool, held: [Forward])>((false, []))

        func begin() { state.withLock { $0.draining = true } }

        /// Whether `forward`'s cancellation is held (passed on by `end`).
        func hold(_ forward: Forward) -> Bool {
            state.withLock { s in
                guard s.draining else { return false }
                s.held.append(forward)
                return true
            }
        }

        func end() {
            let held = state.withLock { s in
                s.draining = false
                defer { s.held = [] }
                return s.held
            }
            for f in held { f.cancel() }
        }
    }
}

import NIOCore
import NIOPosix

/// Refuses a port that is already taken before anything slow happens (loading models takes
/// seconds): binds it once and lets it go. The services bind again for real, and report a port
/// taken in between the same way.
enum PortCheck {
    static func ensureFree(host: String, port: Int, what: String, flags: String) async throws {
        guard port > 0 else { return }  // 0: the system picks a free port
        do {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port).get()
            try await channel.close().get()
        } catch {
            throw refusal(what: what, host: host, port: port, flags: flags, cause: error)
        }
    }

    /// The error for a port that cannot be bound, here or when a service binds it for real.
    static func refusal(what: String, host: String, port: Int, flags: String, cause: any Error) -> ServerError {
        ServerError(.listenFailed, "cannot listen for \(what) on \(host):\(port) (\(flags))", cause: "\(cause)")
    }

    /// Settings are named by their configuration keys; `onestep serve` words them as its flags.
    static let metricsFlags = "`metrics_port`; -1 turns the endpoint off"
    static let httpFlags = "`http_port`; -1 turns HTTP off"
}

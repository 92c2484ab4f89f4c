import GRPCCore
import SwiftProtobuf

/// `max_request_bytes` as a gRPC status: a request message over the limit ends with
/// RESOURCE_EXHAUSTED naming the limit and the size, where the transport alone would reset the
/// stream (the client sees CANCELLED, "stream removed"). The transport accepts up to
/// `transportCap` (twice the limit), so memory stays bounded; only a message past that cap is
/// still reset by the transport.
struct MessageSizeLimit: ServerInterceptor {
    let limit: Int

    /// What the transport is told to accept: twice the limit.
    static func transportCap(_ limit: Int) -> Int { limit <= Int(Int32.max) / 2 ? 2 * limit : Int(Int32.max) }

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        var request = request
        let limit = self.limit
        request.messages = RPCAsyncSequence(
            wrapping: request.messages.map { message in
                if let m = message as? any SwiftProtobuf.Message {
                    let bytes: [UInt8] = try m.serializedBytes()
                    if bytes.count > limit {
                        throw RPCError(
                            code: .resourceExhausted,
                            message:
                                "the request message has \(bytes.count) bytes; the limit is \(limit) (max_request_bytes)"
                        )
                    }
                }
                return message
            })
        return try await next(request, context)
    }
}

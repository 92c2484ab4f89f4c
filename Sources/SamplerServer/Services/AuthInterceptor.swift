import GRPCCore

/// `AuthPolicy` for gRPC: health checks and ServerLive/ServerReady (probes) are open;
/// RepositoryModelLoad/Unload and LogSettings need the admin token; everything else the user token.
public struct AuthInterceptor: ServerInterceptor {
    let policy: AuthPolicy

    static let open: Set<String> = [
        "grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch",
        "inference.GRPCInferenceService/ServerLive", "inference.GRPCInferenceService/ServerReady",
    ]
    static let admin: Set<String> = [
        "inference.GRPCInferenceService/RepositoryModelLoad", "inference.GRPCInferenceService/RepositoryModelUnload",
        "inference.GRPCInferenceService/LogSettings",
    ]

    public init(token: String?, adminToken: String?) {
        policy = AuthPolicy(token: token, adminToken: adminToken)
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.fullyQualifiedMethod
        let access: AuthPolicy.Access =
            Self.admin.contains(method) ? .admin : Self.open.contains(method) ? .open : .user
        try await mapErrors {
            try policy.check(access, presented: Self.bearer(request.metadata))
        }
        return try await next(request, context)
    }

    static func bearer(_ metadata: Metadata) -> String? {
        AuthPolicy.bearer(metadata[stringValues: "authorization"].first(where: { _ in true }))
    }
}

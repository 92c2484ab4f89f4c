import GRPCCore

/// Bearer-token authentication (SERVING.md): with a token configured, every call needs
/// `authorization: Bearer <token>` except health checks and ServerLive/ServerReady (probes);
/// RepositoryModelLoad/Unload need the separate admin token (the user token gets PERMISSION_DENIED). Tokens are compared in constant time
/// and never logged; a failed call learns nothing about models.
public struct AuthInterceptor: ServerInterceptor {
    let token: String?
    let adminToken: String?

    static let open: Set<String> = [
        "grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch",
        "inference.GRPCInferenceService/ServerLive", "inference.GRPCInferenceService/ServerReady",
    ]
    static let admin: Set<String> = [
        "inference.GRPCInferenceService/RepositoryModelLoad", "inference.GRPCInferenceService/RepositoryModelUnload",
    ]

    public init(token: String?, adminToken: String?) {
        self.token = token
        self.adminToken = adminToken
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.fullyQualifiedMethod
        let presented = Self.bearer(request.metadata)
        if Self.admin.contains(method) {
            guard let adminToken else {
                throw RPCError(
                    code: .permissionDenied,
                    message: "model load and unload are disabled: the server has no admin token configured")
            }
            guard let presented, Self.equal(presented, adminToken) else {
                if let presented, let token, Self.equal(presented, token) {
                    // Authenticated, not authorised.
                    throw RPCError(
                        code: .permissionDenied,
                        message: "this call needs the admin token; the user token cannot load or unload models")
                }
                throw RPCError(
                    code: .unauthenticated,
                    message: "this call needs the admin token (authorization: Bearer <admin token>)")
            }
        } else if let token, !Self.open.contains(method) {
            guard let presented, Self.equal(presented, token) || adminToken.map({ Self.equal(presented, $0) }) == true
            else {
                throw RPCError(
                    code: .unauthenticated, message: "missing or wrong bearer token (authorization: Bearer <token>)")
            }
        }
        return try await next(request, context)
    }

    static func bearer(_ metadata: Metadata) -> String? {
        guard let v = metadata[stringValues: "authorization"].first(where: { _ in true }) else { return nil }
        let prefix = "bearer "
        guard v.count > prefix.count, v.prefix(prefix.count).lowercased() == prefix else { return nil }
        return String(v.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces)
    }

    /// Constant-time comparison (for equal lengths).
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: CharacterSetLite) -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}

fileprivate enum CharacterSetLite { case whitespaces }

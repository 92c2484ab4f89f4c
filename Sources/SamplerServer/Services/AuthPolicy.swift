/// Bearer-token authentication, the same for gRPC (`AuthInterceptor`) and HTTP (`RESTServer`):
/// with a token configured, every call needs `authorization: Bearer <token>` except the open ones
/// (health checks and probes); repository load and unload need the separate admin token (the user
/// token gets PERMISSION_DENIED; no admin token configured: they are disabled). The admin token
/// also passes wherever the user token does. Tokens are compared in constant time and never logged;
/// a refused call learns nothing about models.
public struct AuthPolicy: Sendable {
    /// What a call needs.
    public enum Access: Sendable {
        case open, user, admin
    }

    let token: String?
    let adminToken: String?

    public init(token: String?, adminToken: String?) {
        self.token = token
        self.adminToken = adminToken
    }

    /// Throws UNAUTHENTICATED or PERMISSION_DENIED unless `presented` (the bearer token, if any)
    /// grants `access`.
    public func check(_ access: Access, presented: String?) throws(ServerError) {
        switch access {
        case .open:
            return
        case .admin:
            guard let adminToken else {
                throw ServerError(
                    .permissionDenied,
                    "this call (model load and unload, log settings) is disabled: the server has no admin token configured"
                )
            }
            guard let presented, Self.equal(presented, adminToken) else {
                if let presented, let token, Self.equal(presented, token) {
                    // Authenticated, not authorised.
                    throw ServerError(
                        .permissionDenied,
                        "this call needs the admin token; the user token cannot load or unload models or change log settings"
                    )
                }
                throw ServerError(
                    .unauthenticated, "this call needs the admin token (authorization: Bearer <admin token>)")
            }
        case .user:
            guard let token else { return }
            guard let presented, Self.equal(presented, token) || adminToken.map({ Self.equal(presented, $0) }) == true
            else {
                throw ServerError(
                    .unauthenticated, "missing or wrong bearer token (authorization: Bearer <token>)")
            }
        }
    }

    /// The token of an `authorization: Bearer <token>` header value.
    static func bearer(_ value: String?) -> String? {
        guard let v = value else { return nil }
        let prefix = "bearer "
        guard v.count > prefix.count, v.prefix(prefix.count).lowercased() == prefix else { return nil }
        var s = Substring(v.dropFirst(prefix.count))
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
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

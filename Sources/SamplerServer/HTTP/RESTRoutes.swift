import Foundation
import HTTPTypes
import Hummingbird
import SamplerAPI
import SwiftProtobuf

/// The KServe V2 REST routes (`/v2/...`), each a translation of the gRPC call of the same name on
/// the same services: same repository, batcher, checks and limits.
struct RESTRoutes: Sendable {
    let inference: InferenceService
    let maxRequestBytes: Int

    func add(to router: Router<RESTContext>) {
        router.get("/v2/health/live") { _, _ in try RESTResponse.json(["live": true]) }
        router.get("/v2/health/ready") { _, _ in
            let ready = await inference.isReady()
            return try RESTResponse.json(["ready": ready], status: ready ? .ok : .serviceUnavailable)
        }
        router.get("/v2") { _, _ in
            try RESTResponse.json(
                ServerMetadata(
                    name: "onestep", version: inference.serverVersion, extensions: InferenceService.extensions))
        }
        for versioned in [false, true] {
            let base = versioned ? "/v2/models/:model/versions/:version" : "/v2/models/:model"
            router.get("\(base)/ready") { _, context in
                let (model, version) = try Self.selector(context)
                let ready = try await inference.isReady(model: model, version: version)
                return try RESTResponse.json(["ready": ready], status: ready ? .ok : .serviceUnavailable)
            }
            router.get(RouterPath(stringLiteral: base)) { _, context in
                let (model, version) = try Self.selector(context)
                let m = try await inference.metadata(
                    .with {
                        $0.name = model; $0.version = version
                    })
                return try RESTResponse.json(ModelMetadata(m))
            }
            router.get("\(base)/config") { _, context in
                let (model, version) = try Self.selector(context)
                let m = try await inference.config(
                    .with {
                        $0.name = model; $0.version = version
                    })
                var options = JSONEncodingOptions()
                options.preserveProtoFieldNames = true
                let bytes: [UInt8] = try m.config.jsonUTF8Bytes(options: options)
                return RESTResponse.bytes(bytes, contentType: "application/json")
            }
            router.post("\(base)/infer") { request, context in
                let (model, version) = try Self.selector(context)
                return try await ClientDisconnect.cancelling(on: context.connectionClosed) {
                    try await infer(request, model: model, version: version)
                }
            }
        }
        router.post("/v2/repository/index") { request, _ in
            let body = try await RESTBody.collect(request, limit: maxRequestBytes)
            var onlyReady = false
            if !body.isEmpty {
                onlyReady = try JSONDecoder().decode(IndexRequest.self, from: Data(body)).ready ?? false
            }
            let index = await inference.index(onlyReady: onlyReady)
            return try RESTResponse.json(
                index.models.map {
                    IndexEntry(name: $0.name, version: $0.version, state: $0.state, reason: $0.reason)
                })
        }
        // Triton's log settings: GET reads them, POST {"log_verbose_level": 1, ...} changes them.
        router.get("/v2/logging") { _, _ in try RESTResponse.json(LogControl.shared.settings()) }
        router.post("/v2/logging") { request, _ in
            let body = try await RESTBody.collect(request, limit: maxRequestBytes)
            let given: [String: JSONValue]
            do { given = try JSONDecoder().decode([String: JSONValue].self, from: Data(body)) } catch {
                throw ServerError(.invalidArgument, "the body must be a JSON object of log settings")
            }
            var changes: [String: LogControl.Value] = [:]
            for (key, value) in given {
                switch value {
                case .bool(let b): changes[key] = .bool(b)
                case .int(let i):
                    guard let u = UInt32(exactly: i) else {
                        throw ServerError(
                            .invalidArgument, "log setting '\(key)': \(i) is not an unsigned 32-bit integer")
                    }
                    changes[key] = .uint(u)
                case .string(let s): changes[key] = .string(s)
                default:
                    throw ServerError(.invalidArgument, "log setting '\(key)' must be a boolean, integer or string")
                }
            }
            return try RESTResponse.json(try LogControl.shared.apply(changes))
        }
        for action in ["load", "unload"] {
            router.post("/v2/repository/models/:model/\(action)") { request, context in
                _ = try await RESTBody.collect(request, limit: maxRequestBytes)
                let model = try context.parameters.require("model")
                let repository = inference.frontend.repository
                if action == "load" { try await repository.load(model) } else { try await repository.unload(model) }
                return try RESTResponse.json([String: String]())
            }
        }
    }

    /// POST .../infer: the body (JSON, or JSON then binary tensors) becomes a ModelInferRequest
    /// and runs as gRPC's ModelInfer does.
    func infer(_ request: Request, model: String, version: String) async throws -> Response {
        try RESTResponse.refuseWhileShuttingDown(inference.isShuttingDown)
        let body = try await RESTBody.collect(request, limit: maxRequestBytes)
        let decoded = try RESTInferCodec.decode(
            body, headerLength: request.headers[HTTPField.Name(RESTInferCodec.headerLengthField)!], model: model,
            version: version)
        let (response, headerLength) = try await inference.infer(
            decoded.message, metadata: [:], responsePerFloat: RESTInferCodec.responseBytesPerFloat(decoded)
        ) {
            try RESTInferCodec.encode($0, request: $1, decoded: decoded)
        }
        guard let headerLength else { return RESTResponse.buffer(response, contentType: "application/json") }
        return RESTResponse.buffer(
            response, contentType: "application/octet-stream",
            headers: [HTTPField.Name(RESTInferCodec.headerLengthField)!: "\(headerLength)"])
    }

    static func selector(_ context: RESTContext) throws -> (model: String, version: String) {
        (try context.parameters.require("model"), context.parameters.get("version") ?? "")
    }

    struct ServerMetadata: Encodable {
        var name: String
        var version: String
        var extensions: [String]
    }

    struct TensorMetadata: Encodable {
        var name: String
        var datatype: String
        var shape: [Int64]
    }

    struct ModelMetadata: Encodable {
        var name: String
        var versions: [String]
        var platform: String
        var inputs: [TensorMetadata]
        var outputs: [TensorMetadata]

        init(_ m: Inference_ModelMetadataResponse) {
            name = m.name
            versions = m.versions
            platform = m.platform
            inputs = m.inputs.map { TensorMetadata(name: $0.name, datatype: $0.datatype, shape: $0.shape) }
            outputs = m.outputs.map { TensorMetadata(name: $0.name, datatype: $0.datatype, shape: $0.shape) }
        }
    }

    struct IndexRequest: Decodable {
        var ready: Bool?
    }

    struct IndexEntry: Encodable {
        var name: String
        var version: String
        var state: String
        var reason: String
    }
}

import Foundation
import SamplerAPI

/// A JSON value as V2 REST carries it in `data` and `parameters`: integers kept exact (64-bit
/// seeds), other numbers as doubles.
enum JSONValue: Decodable, Sendable {
    case int(Int64), double(Double), string(String), bool(Bool), array([JSONValue]), object([String: JSONValue]), null

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    /// A request parameter in the protocol's terms.
    var parameter: Inference_InferParameter? {
        switch self {
        case .int(let v): return .with { $0.int64Param = v }
        case .double(let v): return .with { $0.doubleParam = v }
        case .string(let v): return .with { $0.stringParam = v }
        case .bool(let v): return .with { $0.boolParam = v }
        case .array, .object, .null: return nil
        }
    }
}

/// KServe V2 REST inference (and Triton's binary tensor data extension, which tritonclient.http
/// uses by default) as a translation to and from `ModelInferRequest`: the request becomes the gRPC
/// message that `KServeInferCodec` checks, so a request is checked and run the same way whichever
/// door it came through; the job's result is written back as JSON, with binary outputs appended
/// after the JSON header where asked (`Inference-Header-Content-Length`).
enum RESTInferCodec {
    struct Input: Decodable {
        var name: String
        var shape: [Int64]
        var datatype: String
        var parameters: [String: JSONValue]?
        var data: JSONValue?
    }

    struct Output: Decodable {
        var name: String
        var parameters: [String: JSONValue]?
    }

    struct Body: Decodable {
        var id: String?
        var parameters: [String: JSONValue]?
        var inputs: [Input]
        var outputs: [Output]?
    }

    /// A decoded request: the gRPC message and, per output name, whether it goes binary.
    struct Decoded {
        var message: Inference_ModelInferRequest
        var binaryOutputs: Set<String>
        var binaryByDefault: Bool
    }

    static let headerLengthField = "Inference-Header-Content-Length"

    /// `body` is the whole request; `headerLength` (the `Inference-Header-Content-Length` header)
    /// says where its JSON ends and the binary tensor data begins.
    static func decode(_ body: [UInt8], headerLength: String?, model: String, version: String) throws -> Decoded {
        var jsonEnd = body.count
        if let headerLength {
            guard let n = Int(headerLength), n >= 0, n <= body.count else {
                throw ServerError(
                    .invalidArgument,
                    "header \(headerLengthField) '\(headerLength)' is not a length within the \(body.count)-byte body")
            }
            jsonEnd = n
        }
        let request: Body
        do { request = try JSONDecoder().decode(Body.self, from: Data(body[0..<jsonEnd])) } catch let e as DecodingError
        {
            throw ServerError(.invalidArgument, "the body is not a V2 inference request: \(RESTBody.describe(e))")
        }
        let binary = body[jsonEnd...]
        var m = Inference_ModelInferRequest()
        m.modelName = model
        m.modelVersion = version
        m.id = request.id ?? ""
        for (key, value) in request.parameters ?? [:] where key != "binary_data_output" {
            guard let p = value.parameter else {
                throw ServerError(.invalidArgument, "parameter '\(key)' must be a boolean, number or string")
            }
            m.parameters[key] = p
        }
        // Binary inputs take their bytes in input order; when any input is binary every input goes
        // to raw_input_contents (the gRPC message cannot mix typed and raw).
        var offset = binary.startIndex
        // Per input: its binary bytes, or its JSON integers.
        var given: [Either] = []
        for input in request.inputs {
            var t = Inference_ModelInferRequest.InferInputTensor()
            t.name = input.name
            t.datatype = input.datatype
            t.shape = input.shape
            if let size = input.parameters?["binary_data_size"] {
                guard case .int(let s) = size, s >= 0, let n = Int(exactly: s), n <= binary.endIndex - offset else {
                    throw ServerError(
                        .invalidArgument,
                        "input '\(input.name)': binary_data_size \(size) is not a size within the \(binary.endIndex - offset) binary bytes left"
                    )
                }
                given.append(.bytes(Data(binary[offset..<offset + n])))
                offset += n
            } else {
                guard let data = input.data else {
                    throw ServerError(
                        .invalidArgument, "input '\(input.name)' has neither data nor parameters.binary_data_size")
                }
                given.append(.values(input.datatype == "INT64" ? try integers(data, input: input.name) : []))
            }
            m.inputs.append(t)
        }
        guard offset == binary.endIndex else {
            throw ServerError(
                .invalidArgument,
                "the body has \(binary.endIndex - offset) binary bytes that no input's binary_data_size accounts for")
        }
        if given.contains(where: { if case .bytes = $0 { true } else { false } }) {
            m.rawInputContents = given.map {
                switch $0 {
                case .bytes(let b): b
                case .values(let v): InferRequestChecks.int64Bytes(v)
                }
            }
        } else {
            for (i, g) in given.enumerated() { if case .values(let v) = g { m.inputs[i].contents.int64Contents = v } }
        }
        var binaryOutputs: Set<String> = []
        for o in request.outputs ?? [] {
            m.outputs.append(.with { $0.name = o.name })
            if case .bool(true)? = o.parameters?["binary_data"] { binaryOutputs.insert(o.name) }
        }
        var byDefault = false
        if case .bool(true)? = request.parameters?["binary_data_output"] { byDefault = true }
        if request.outputs?.isEmpty ?? true, byDefault { binaryOutputs = ["sample", "seed"] }
        return Decoded(message: m, binaryOutputs: binaryOutputs, binaryByDefault: byDefault)
    }

    private enum Either {
        case bytes(Data), values([Int64])
    }

    /// The integers of a `data` field, flattened (V2 REST allows nested row-major arrays).
    static func integers(_ v: JSONValue, input: String) throws(ServerError) -> [Int64] {
        var out: [Int64] = []
        func walk(_ v: JSONValue) throws(ServerError) {
            switch v {
            case .int(let x): out.append(x)
            case .array(let a): for x in a { try walk(x) }
            default:
                throw ServerError(.invalidArgument, "input '\(input)' is INT64: its data must be integers, got \(v)")
            }
        }
        try walk(v)
        return out
    }
}

import AsyncHTTPClient
import Foundation
import NIOCore

/// A request the daemon's HTTP door answered with an error status.
public struct HTTPStatusError: Error, CustomStringConvertible {
    public var status: Int
    public var body: String
    public var description: String { "HTTP \(status): \(body)" }
}

extension LoadTarget {
    /// The daemon's KServe V2 REST door (`POST /v2/models/{model}/infer`, AsyncHTTPClient): `count`
    /// seeds per request (`seed`, `seed + 1`, ...), JSON in, the samples back as binary tensor data
    /// (the REST counterpart of gRPC's raw output), HTTP/1.1 connections kept alive, one per
    /// concurrent caller.
    public static func http(
        client: HTTPClient, base: String, model: String, version: Int64?, count: Int, token: String?, timeout: Double
    ) -> LoadTarget {
        let url =
            base.trimmingCharacters(in: ["/"]) + "/v2/models/\(model)" + (version.map { "/versions/\($0)" } ?? "")
            + "/infer"
        return LoadTarget { seed in
            let seeds = (0..<UInt64(count)).map { String(Int64(bitPattern: seed &+ $0)) }.joined(separator: ",")
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "content-type", value: "application/json")
            if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
            request.body = .bytes(
                ByteBuffer(
                    string:
                        #"{"inputs":[{"name":"seed","shape":[\#(count)],"datatype":"INT64","data":[\#(seeds)]}],"parameters":{"binary_data_output":true}}"#
                ))
            let response = try await client.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
            let body = try await response.body.collect(upTo: 1 << 30)
            guard response.status == .ok else {
                throw HTTPStatusError(
                    status: Int(response.status.code), body: String(buffer: body).prefix(300).description)
            }
        }
    }
}

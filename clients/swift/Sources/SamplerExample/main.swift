import Foundation
import SamplerClient

// usage: sampler-example [HOST:PORT] [MODEL]
let arguments = CommandLine.arguments
let server = arguments.count > 1 ? arguments[1] : "127.0.0.1:8001"
let model = arguments.count > 2 ? arguments[2] : "mnist-onestep"
let token = ProcessInfo.processInfo.environment["ONESTEP_TOKEN"]

// Retries on UNAVAILABLE / RESOURCE_EXHAUSTED (honouring the server's hint), 30 s per call.
let config = try SamplerClient.Configuration(endpoints: [server], token: token, timeout: .seconds(30))
try await SamplerClient.with(config) { client in
    let info = try await client.modelInfo(model: model)
    print(
        "\(model) version \(info.version): \(info.kind), samples of shape \(info.sampleShape), \(info.numClasses) classes"
    )

    // Four PNGs, encoded by the server.
    let r = try await client.sample(
        .with {
            $0.model = model
            $0.count = 4
            $0.seed = 1
            $0.format = .png
            if info.numClasses > 0 { $0.labels = [0] }
        })
    for (id, png) in zip(r.ids, r.images) {
        let path = "\(model)-v\(r.modelVersion)-s\(id.seed)-i\(id.index).png"
        try png.write(to: URL(fileURLWithPath: path))
        print("wrote \(path)")
    }

    // 64 raw float32 samples, streamed as each sub-batch completes.
    try await client.sampleStream(
        .with {
            $0.model = model
            $0.count = 64
            $0.seed = 2
            if info.numClasses > 0 { $0.labels = [1] }
        }
    ) { part in
        print("streamed \(part.completed)/\(part.total) (\(part.chunk.floats.count) floats in this part)")
    }
}

import TensorCore

/// One sample's line in the manifest: which file holds it (and which row, for npy/idx), and the
/// SHA-256 of its stored bytes (the whole PNG file; the row's bytes in an npy/idx file).
public struct ManifestRecord: Sendable, Equatable {
    public var seed: UInt64
    public var label: Int32?
    public var file: String
    public var row: Int?
    public var sha256: String
}

/// A chunk's samples turned into files (paths relative to the output folder) and manifest records.
struct EncodedChunk {
    var files: [(path: String, bytes: [UInt8])]
    var records: [ManifestRecord]
}

enum ChunkEncoding {
    /// `samples`: `seeds.count * prod(shape)` floats, sample-major, in [-1, 1] for images.
    static func encode(
        format: OutputFormat, seeds: ClosedRange<UInt64>, labels: [Int32]?, samples: [Float],
        shape: [Int], numClasses: Int
    ) throws -> EncodedChunk {
        let n = seeds.count, size = shape.reduce(1, *)
        precondition(samples.count == n * size, "chunk of \(n) samples needs \(n * size) floats, got \(samples.count)")
        let seedList = Array(seeds)
        switch format {
        case .png:
            let (c, h, w) = (shape[0], shape[1], shape[2])
            var files: [(String, [UInt8])] = [], records: [ManifestRecord] = []
            var pixels = [UInt8](repeating: 0, count: size)
            for k in 0..<n {
                for ch in 0..<c {
                    for p in 0..<(h * w) { pixels[p * c + ch] = PNG.quantize(samples[k * size + ch * h * w + p]) }
                }
                let bytes = try PNG.encode(pixels: pixels, width: w, height: h, channels: c)
                let path = FileNames.png(seed: seedList[k])
                files.append((path, bytes))
                records.append(
                    ManifestRecord(
                        seed: seedList[k], label: labels?[k], file: path, row: nil, sha256: SHA256.hex(bytes)))
            }
            return EncodedChunk(files: files, records: records)

        case .npy:
            let path = FileNames.array(.npy, "samples", seeds: seeds)
            var files = [(path, try NPY.encode(samples, shape: [n] + shape))]
            let rows = samples.withUnsafeBytes { raw in
                (0..<n).map { Array(raw[($0 * size * 4)..<(($0 + 1) * size * 4)]) }
            }
            if let labels {
                files.append((FileNames.array(.npy, "labels", seeds: seeds), try NPY.encode(int32: labels, shape: [n])))
            }
            return EncodedChunk(files: files, records: records(seedList, labels, path, rows))

        case .idx:
            let path = FileNames.array(.idx, "samples", seeds: seeds)
            let rows: [[UInt8]]
            let header: [UInt8]
            if shape.count == 3 {
                rows = (0..<n).map { k in samples[(k * size)..<((k + 1) * size)].map { PNG.quantize($0) } }
                header = IDXEncoding.header(type: 0x08, shape: [n] + (shape[0] == 1 ? Array(shape.dropFirst()) : shape))
            } else {
                rows = (0..<n).map { k in samples[(k * size)..<((k + 1) * size)].flatMap(IDXEncoding.bigEndian) }
                header = IDXEncoding.header(type: 0x0D, shape: [n] + shape)
            }
            var files = [(path, header + rows.flatMap { $0 })]
            if let labels {
                precondition(numClasses <= 256, "IDX labels are bytes")
                files.append(
                    (
                        FileNames.array(.idx, "labels", seeds: seeds),
                        IDXEncoding.header(type: 0x08, shape: [n]) + labels.map { UInt8($0) }
                    ))
            }
            return EncodedChunk(files: files, records: records(seedList, labels, path, rows))
        }
    }

    private static func records(_ seeds: [UInt64], _ labels: [Int32]?, _ path: String, _ rows: [[UInt8]])
        -> [ManifestRecord]
    {
        rows.enumerated().map { k, row in
            ManifestRecord(seed: seeds[k], label: labels?[k], file: path, row: k, sha256: SHA256.hex(row))
        }
    }
}

/// Writing MNIST's IDX format: two zero bytes, the element type (0x08 uint8, 0x0D float32), the
/// number of dimensions, each dimension as a big-endian UInt32, then the data (big-endian).
enum IDXEncoding {
    static func header(type: UInt8, shape: [Int]) -> [UInt8] {
        [0, 0, type, UInt8(shape.count)]
            + shape.flatMap { d in (0..<4).map { UInt8(truncatingIfNeeded: UInt32(d) >> (24 - 8 * $0)) } }
    }

    static func bigEndian(_ v: Float) -> [UInt8] {
        let b = v.bitPattern
        return (0..<4).map { UInt8(truncatingIfNeeded: b >> (24 - 8 * $0)) }
    }
}

import Foundation
import TensorCore

/// Turns float samples into the bytes a response carries.
enum OutputEncoding {
    /// Little-endian IEEE float32, row-major.
    static func float32(_ samples: [Float]) -> Data {
        var data = Data(count: samples.count * 4)
        data.withUnsafeMutableBytes { raw in
            for (i, v) in samples.enumerated() {
                raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
            }
        }
        return data
    }

    /// Images live in [-1, 1]: `round(clamp((x + 1) / 2, 0, 1) * 255)`; NaN maps to 0.
    static func uint8(_ x: Float) -> UInt8 { PNG.quantize(x) }

    static func uint8(_ samples: [Float]) -> Data {
        Data(samples.map(uint8))
    }

    /// One PNG per sample; `shape` is `[C, H, W]` with C 1 or 3 (planes become interleaved pixels).
    static func png(_ samples: [Float], shape: [Int]) throws(ServerError) -> [Data] {
        guard shape.count == 3, shape[0] == 1 || shape[0] == 3 else {
            throw ServerError(
                .invalidArgument,
                "PNG output needs an image model with 1 or 3 channels; this model's samples have shape \(shape)")
        }
        let (c, h, w) = (shape[0], shape[1], shape[2])
        let n = c * h * w
        var out: [Data] = []
        for k in 0..<(samples.count / n) {
            var pixels = [UInt8](repeating: 0, count: n)
            for ch in 0..<c {
                for p in 0..<(h * w) { pixels[p * c + ch] = uint8(samples[k * n + ch * h * w + p]) }
            }
            do { out.append(Data(try PNG.encode(pixels: pixels, width: w, height: h, channels: c))) } catch {
                throw ServerError(.internalError, "PNG encoding failed", cause: "\(error)")
            }
        }
        return out
    }

    /// Decodes little-endian float32 bytes (tests and clients).
    static func floats(_ data: Data) -> [Float] {
        data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map {
                Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
            }
        }
    }
}

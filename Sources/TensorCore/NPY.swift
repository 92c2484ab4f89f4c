import Foundation

/// NumPy `.npy` (format 1.0) for float32, int32 and uint8 arrays: magic, header dict padded to 64 bytes,
/// raw little-endian data. Writes are atomic.
public enum NPY {
    /// Encodes a little-endian float32 array of `shape`.
    public static func encode(_ values: [Float], shape: [Int]) throws -> [UInt8] {
        guard shape.reduce(1, *) == values.count else {
            throw TensorCoreError(
                .shapeMismatch, "npy: shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        }
        var out = header(descr: "<f4", shape: shape)
        values.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0) }
        }
        return out
    }

    /// Encodes a uint8 array of `shape`.
    public static func encode(bytes: [UInt8], shape: [Int]) throws -> [UInt8] {
        guard shape.reduce(1, *) == bytes.count else {
            throw TensorCoreError(
                .shapeMismatch, "npy: shape \(shape) needs \(shape.reduce(1, *)) bytes, got \(bytes.count)")
        }
        return header(descr: "|u1", shape: shape) + bytes
    }

    /// Encodes a little-endian int32 array of `shape` (class labels).
    public static func encode(int32 values: [Int32], shape: [Int]) throws -> [UInt8] {
        guard shape.reduce(1, *) == values.count else {
            throw TensorCoreError(
                .shapeMismatch, "npy: shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        }
        return header(descr: "<i4", shape: shape)
            + values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: UInt32(bitPattern: v) >> (8 * $0)) } }
    }

    public static func write(_ values: [Float], shape: [Int], to path: String) throws {
        try atomicWriteFile(try encode(values, shape: shape), to: path)
    }

    static func header(descr: String, shape: [Int]) -> [UInt8] {
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(dims), }"
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let n = dict.utf8.count
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(dict.utf8)
    }
}

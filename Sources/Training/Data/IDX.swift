import Foundation

/// The IDX format of MNIST, for unsigned bytes only: two zero bytes, 0x08 (uint8), the number of
/// dimensions, each dimension as a big-endian UInt32, then the raw bytes in row-major order.
/// Files are untrusted input: the header is checked against the file size before anything is used.
public enum IDX {
    /// Largest number of dimensions accepted (MNIST uses 1 and 3).
    public static let maxDimensions = 8

    /// Parses IDX bytes. `what` names the source in error messages.
    public static func parse(_ data: [UInt8], what: String = "IDX data") throws -> (shape: [Int], bytes: [UInt8]) {
        guard data.count >= 4 else {
            throw TrainingError(.dataCorrupt, "\(what): \(data.count) bytes, too short for an IDX header")
        }
        guard data[0] == 0, data[1] == 0 else {
            throw TrainingError(
                .dataCorrupt, "\(what): not an IDX file (magic \(hex(data[0...3])), expected 0000 08xx)")
        }
        guard data[2] == 0x08 else {
            throw TrainingError(
                .dataCorrupt,
                "\(what): IDX element type 0x\(String(data[2], radix: 16)) is not supported (only 0x08, uint8)")
        }
        let ndim = Int(data[3])
        guard ndim >= 1, ndim <= maxDimensions else {
            throw TrainingError(.dataCorrupt, "\(what): IDX with \(ndim) dimensions (expected 1...\(maxDimensions))")
        }
        let headerSize = 4 + 4 * ndim
        guard data.count >= headerSize else {
            throw TrainingError(
                .dataCorrupt, "\(what): \(data.count) bytes, too short for a \(ndim)-dimensional IDX header")
        }
        var shape: [Int] = []
        var count = 1
        for d in 0..<ndim {
            let o = 4 + 4 * d
            let dim = Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3])
            shape.append(dim)
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow, product <= Int(Int32.max) else {
                throw TrainingError(.dataCorrupt, "\(what): IDX dimensions \(shape) are too large")
            }
            count = product
        }
        guard data.count - headerSize == count else {
            throw TrainingError(
                .dataCorrupt,
                "\(what): IDX shape \(shape) needs \(count) data bytes, file has \(data.count - headerSize)")
        }
        return (shape, Array(data[headerSize...]))
    }

    /// Reads and parses an IDX file.
    public static func read(path: String) throws -> (shape: [Int], bytes: [UInt8]) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainingError(.dataMissing, "\(path) not found")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TrainingError(.io, "cannot read \(path)", cause: "\(error)")
        }
        return try parse([UInt8](data), what: path)
    }

    /// IDX bytes for `bytes` with `shape` (the product of `shape` must equal `bytes.count`).
    public static func encode(shape: [Int], bytes: [UInt8]) throws -> [UInt8] {
        guard !shape.isEmpty, shape.count <= maxDimensions else {
            throw TrainingError(.invalidConfig, "IDX needs 1...\(maxDimensions) dimensions, got \(shape.count)")
        }
        guard shape.allSatisfy({ $0 >= 0 && $0 <= Int(UInt32.max) }),
            shape.reduce(1, { $0 * $1 }) == bytes.count
        else {
            throw TrainingError(.invalidConfig, "IDX shape \(shape) does not match \(bytes.count) bytes")
        }
        var out: [UInt8] = [0, 0, 0x08, UInt8(shape.count)]
        out.reserveCapacity(4 + 4 * shape.count + bytes.count)
        for d in shape {
            let v = UInt32(d)
            out += [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
        }
        out += bytes
        return out
    }

    /// Writes an IDX file atomically (temporary file in the same directory, then rename).
    public static func write(path: String, shape: [Int], bytes: [UInt8]) throws {
        let encoded = try encode(shape: shape, bytes: bytes)
        do {
            try Data(encoded).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw TrainingError(.io, "cannot write \(path)", cause: "\(error)")
        }
    }

    private static func hex(_ b: ArraySlice<UInt8>) -> String {
        b.map { String(format: "%02x", $0) }.joined()
    }
}

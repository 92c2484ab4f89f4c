// Safetensors reading. The bytes are untrusted: every size and offset is checked against the actual
// data before anything proportional to a declared size is allocated.
import Foundation

extension SafetensorsFile {
    /// Largest header accepted (bytes), as in the reference implementation.
    public static let maxHeaderBytes = 100_000_000

    /// Reads and validates the checkpoint at `path`. Throws `.io` if the file cannot be read,
    /// `.corruptFile` for a malformed file, `.unsupported` for a dtype not in `SafetensorsDType`.
    public static func read(path: String) throws -> SafetensorsFile {
        let bytes = try readWholeFile(path)
        do {
            return try decode(bytes: bytes)
        } catch let e as TensorCoreError {
            throw TensorCoreError(e.code, "\(path): \(e.message)", cause: e.cause)
        }
    }

    /// Parses and validates checkpoint bytes (see `read(path:)`). Tensors come out in data order.
    public static func decode(bytes: [UInt8]) throws -> SafetensorsFile {
        guard bytes.count >= 8 else {
            throw TensorCoreError(
                .corruptFile,
                "truncated file: \(bytes.count) bytes, fewer than the 8-byte header length")
        }
        var n64: UInt64 = 0
        for i in 0..<8 { n64 |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n64 <= UInt64(maxHeaderBytes) else {
            throw TensorCoreError(.corruptFile, "header length \(n64) exceeds the limit of \(maxHeaderBytes) bytes")
        }
        let headerLength = Int(n64)
        guard headerLength <= bytes.count - 8 else {
            throw TensorCoreError(
                .corruptFile,
                "truncated file: header length \(headerLength) needs \(headerLength + 8) bytes but the file has \(bytes.count)"
            )
        }
        let headerSlice = bytes[8..<(8 + headerLength)]
        guard String(validating: headerSlice, as: UTF8.self) != nil else {
            throw TensorCoreError(.corruptFile, "header is not valid UTF-8")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(headerSlice))
        } catch {
            throw TensorCoreError(.corruptFile, "header is not valid JSON", cause: "\(error)")
        }
        guard let object = json as? [String: Any] else {
            throw TensorCoreError(.corruptFile, "header JSON is not an object")
        }

        let dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: SafetensorsDType, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else {
                    throw TensorCoreError(.corruptFile, "__metadata__ is not an object")
                }
                for (k, v) in map {
                    guard let s = v as? String else {
                        throw TensorCoreError(.corruptFile, "__metadata__ value for '\(k)' is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            func bad(_ problem: String) -> TensorCoreError {
                TensorCoreError(.corruptFile, "tensor '\(name)': \(problem)")
            }
            guard let entry = value as? [String: Any] else { throw bad("entry is not an object") }
            guard let dtypeName = entry["dtype"] as? String else { throw bad("missing or non-string dtype") }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw TensorCoreError(
                    .unsupported,
                    "tensor '\(name)': unsupported dtype '\(dtypeName)' (readable: "
                        + SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            guard let shapeArray = entry["shape"] as? [Any] else { throw bad("missing or non-array shape") }
            var shape: [Int] = []
            for d in shapeArray {
                guard let i = jsonInt(d), i >= 0 else {
                    throw bad("shape \(shapeArray) is not a list of non-negative integers")
                }
                shape.append(i)
            }
            guard let offs = entry["data_offsets"] as? [Any], offs.count == 2,
                let begin = jsonInt(offs[0]), let end = jsonInt(offs[1]), begin >= 0
            else {
                throw bad("data_offsets must be two non-negative integers [begin, end]")
            }
            guard begin <= end else { throw bad("data_offsets [\(begin), \(end)] has begin after end") }
            guard end <= dataLength else {
                throw bad(
                    "data_offsets [\(begin), \(end)] run past the end of the data (\(dataLength) bytes; truncated file?)"
                )
            }
            var elements = 1
            for d in shape {
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw bad("shape \(shape) is too large") }
                elements = p
            }
            let (need, o) = elements.multipliedReportingOverflow(by: dtype.size)
            guard !o, need == end - begin else {
                throw bad(
                    "data_offsets [\(begin), \(end)] hold \(end - begin) bytes but \(dtype.rawValue) shape \(shape) needs "
                        + (o ? "more than fits in memory" : "\(need)"))
            }
            entries.append((name, dtype, shape, begin, end))
        }

        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var covered = 0
        var previous: (name: String, begin: Int, end: Int)?
        for e in entries where e.end > e.begin {
            if let p = previous, e.begin < p.end {
                throw TensorCoreError(
                    .corruptFile,
                    "tensors '\(p.name)' [\(p.begin), \(p.end)] and '\(e.name)' [\(e.begin), \(e.end)] overlap")
            }
            if e.begin > covered {
                throw TensorCoreError(
                    .corruptFile,
                    "data bytes [\(covered), \(e.begin)) belong to no tensor (gap before '\(e.name)')")
            }
            covered = e.end
            previous = (e.name, e.begin, e.end)
        }
        guard covered == dataLength else {
            throw TensorCoreError(
                .corruptFile,
                "data region has \(dataLength) bytes but the tensors cover only the first \(covered)")
        }

        var file = try SafetensorsFile(tensors: [], metadata: metadata)
        try bytes.withUnsafeBytes { raw in
            for e in entries {
                let base = UnsafeRawBufferPointer(rebasing: raw[(dataStart + e.begin)..<(dataStart + e.end)])
                try file.append(e.name, Tensor(shape: e.shape, storage: convert(base, e.dtype)))
            }
        }
        return file
    }
}

/// An integer JSON value (rejects booleans, fractions and out-of-range numbers).
private func jsonInt(_ v: Any) -> Int? {
    // JSONSerialization gives booleans as NSNumber with objCType "c"; exact `as? Int` refuses fractions.
    guard let n = v as? NSNumber, String(cString: n.objCType) != "c", let i = v as? Int else { return nil }
    return i
}

/// Little-endian elements of `dtype` converted to Float.
private func convert(_ raw: UnsafeRawBufferPointer, _ dtype: SafetensorsDType) -> [Float] {
    let count = raw.count / dtype.size
    return [Float](unsafeUninitializedCapacity: count) { out, initialized in
        for i in 0..<count {
            let o = i * dtype.size
            let x: Float
            switch dtype {
            case .f32:
                x = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)))
            case .f64:
                x = Float(
                    Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self))))
            case .f16: x = halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
            case .bf16:
                x = Float(
                    bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
                        << 16)
            case .i64: x = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int64.self)))
            case .i32: x = Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int32.self)))
            case .i16: x = Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int16.self)))
            case .i8: x = Float(raw.load(fromByteOffset: o, as: Int8.self))
            case .u64: x = Float(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self)))
            case .u32: x = Float(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)))
            case .u16: x = Float(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
            case .u8: x = Float(raw[o])
            case .bool: x = raw[o] == 0 ? 0 : 1
            }
            out[i] = x
        }
        initialized = count
    }
}

/// IEEE 754 binary16 bits to Float (subnormals, infinities and NaN included).
private func halfToFloat(_ h: UInt16) -> Float {
    let sign: Float = (h & 0x8000) != 0 ? -1 : 1
    let exp = Int((h >> 10) & 0x1F)
    let frac = Float(h & 0x3FF)
    switch exp {
    case 0: return sign * frac * 0x1p-24
    case 31: return frac == 0 ? sign * .infinity : .nan
    default: return sign * (1 + frac / 1024) * Float(sign: .plus, exponent: exp - 15, significand: 1)
    }
}

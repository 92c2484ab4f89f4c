// Safetensors writing: float32 only, deterministic bytes, atomic file replacement.

extension SafetensorsFile {
    /// The safetensors bytes of `tensors` and `metadata`. Names are sorted in the header and the data
    /// follows in that order; the header is compact JSON padded with spaces to a multiple of 8 bytes.
    /// Throws `invalidArgument` on a duplicate, empty or reserved (`__metadata__`) name.
    public static func encode(tensors: [(String, Tensor)], metadata: [String: String] = [:]) throws -> [UInt8] {
        var seen = Set<String>()
        for (name, _) in tensors {
            try checkName(name)
            guard seen.insert(name).inserted else {
                throw TensorCoreError(.invalidArgument, "duplicate tensor name '\(name)'")
            }
        }
        let sorted = tensors.sorted { $0.0 < $1.0 }

        var header = "{"
        var first = true
        if !metadata.isEmpty {
            header += "\"__metadata__\":{"
            header += metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
                .joined(separator: ",")
            header += "}"
            first = false
        }
        var offset = 0
        for (name, t) in sorted {
            let end = offset + t.count * 4
            if !first { header += "," }
            first = false
            header += "\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":["
            header += t.shape.map(String.init).joined(separator: ",")
            header += "],\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        header += "}"

        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }

        var out = [UInt8]()
        out.reserveCapacity(8 + headerBytes.count + offset)
        let n = UInt64(headerBytes.count)
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) }
        out.append(contentsOf: headerBytes)
        for (_, t) in sorted {
            t.withUnsafeBufferPointer { p in
                for x in p {
                    let b = x.bitPattern
                    out.append(UInt8(truncatingIfNeeded: b))
                    out.append(UInt8(truncatingIfNeeded: b >> 8))
                    out.append(UInt8(truncatingIfNeeded: b >> 16))
                    out.append(UInt8(truncatingIfNeeded: b >> 24))
                }
            }
        }
        return out
    }

    /// Writes `tensors` and `metadata` to `path` atomically (temporary file in the same directory,
    /// fsync, rename). Throws `invalidArgument` for bad names, `.io` when the file cannot be written.
    public static func write(tensors: [(String, Tensor)], metadata: [String: String] = [:], to path: String) throws {
        try atomicWriteFile(encode(tensors: tensors, metadata: metadata), to: path)
    }

    /// The bytes of this checkpoint (see `encode(tensors:metadata:)`).
    public func encode() throws -> [UInt8] {
        try Self.encode(tensors: orderedTensors, metadata: metadata)
    }

    /// Writes this checkpoint to `path` atomically (see `write(tensors:metadata:to:)`).
    public func write(to path: String) throws {
        try Self.write(tensors: orderedTensors, metadata: metadata, to: path)
    }
}

/// A JSON string literal: quotes, backslash and control characters escaped, the rest kept as UTF-8.
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A safetensors checkpoint held in memory: named float32 tensors in a fixed order, plus the
/// string-to-string `__metadata__` map.
///
/// Format (https://huggingface.co/docs/safetensors): an 8-byte little-endian `UInt64` header length
/// `n`, `n` bytes of UTF-8 JSON (an object mapping each tensor name to
/// `{"dtype", "shape", "data_offsets": [begin, end]}`, plus an optional `"__metadata__"` object of
/// strings), then the raw little-endian data; offsets are relative to the start of the data.
///
/// Writing (`SafetensorsWriter.swift`) produces F32 only, deterministically: names sorted, header
/// padded with spaces to a multiple of 8, data in header order. Reading (`SafetensorsReader.swift`)
/// treats the file as untrusted, validates every entry before touching the data, and converts the
/// dtypes in `SafetensorsDType` to `Float` (I64 labels included).
public struct SafetensorsFile: Sendable {
    /// Tensor names in order: data-offset order for a file read, insertion order otherwise.
    public private(set) var names: [String]
    /// The tensors by name.
    public private(set) var tensors: [String: Tensor]
    /// The `__metadata__` map (empty when the file has none).
    public var metadata: [String: String]

    /// A checkpoint of the given tensors; throws `invalidArgument` on a duplicate or reserved name.
    public init(tensors: [(String, Tensor)], metadata: [String: String] = [:]) throws {
        self.names = []
        self.tensors = [:]
        self.metadata = metadata
        for (name, tensor) in tensors { try append(name, tensor) }
    }

    /// Adds a tensor at the end; throws `invalidArgument` on a duplicate or reserved name.
    public mutating func append(_ name: String, _ tensor: Tensor) throws {
        try Self.checkName(name)
        guard tensors[name] == nil else {
            throw TensorCoreError(.invalidArgument, "duplicate tensor name '\(name)'")
        }
        names.append(name)
        tensors[name] = tensor
    }

    /// Every tensor's shape by name (what a loader checks a planned network against).
    public var shapes: [String: [Int]] { tensors.mapValues(\.shape) }

    /// The tensors in `names` order.
    public var orderedTensors: [(String, Tensor)] { names.map { ($0, tensors[$0]!) } }

    /// The tensor called `name`; throws `invalidArgument` listing (the first few) names present.
    public func tensor(_ name: String) throws -> Tensor {
        if let t = tensors[name] { return t }
        let shown = names.prefix(8).map { "'\($0)'" }.joined(separator: ", ")
        let more = names.count > 8 ? ", ... (\(names.count) in all)" : ""
        throw TensorCoreError(
            .invalidArgument,
            "no tensor named '\(name)' in checkpoint; it holds \(names.isEmpty ? "no tensors" : shown + more)")
    }

    static func checkName(_ name: String) throws {
        guard !name.isEmpty else { throw TensorCoreError(.invalidArgument, "empty tensor name") }
        guard name != "__metadata__" else {
            throw TensorCoreError(.invalidArgument, "'__metadata__' is reserved and cannot name a tensor")
        }
    }
}

/// The element types a safetensors file may declare that the reader converts to `Float`.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
    case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
}

// MARK: - Atomic file writing (shared by the safetensors writer and PNG)

/// Writes `bytes` to `path` atomically: a temporary file `path.tmp-PID-RANDOM` in the same directory,
/// fsync, rename over the target, fsync of the directory. On any failure the temporary file is
/// removed and a `.io` error naming the path and the system's reason is thrown.
public func atomicWriteFile(_ bytes: [UInt8], to path: String) throws {
    let dir: String
    if let slash = path.lastIndex(of: "/") {
        dir = slash == path.startIndex ? "/" : String(path[..<slash])
    } else {
        dir = "."
    }
    let tmp = "\(path).tmp-\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
    func fail(_ what: String) -> TensorCoreError {
        TensorCoreError(.io, "\(what) '\(path)'", cause: String(cString: strerror(errno)))
    }
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw fail("cannot create a temporary file to write") }
    var ok = false
    defer {
        if !ok { unlink(tmp) }
    }
    do {
        defer { close(fd) }
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw fail("cannot write")
                }
                done += n
            }
        }
        guard fsync(fd) == 0 else { throw fail("cannot fsync") }
    }
    guard rename(tmp, path) == 0 else { throw fail("cannot rename temporary file onto") }
    ok = true
    let dfd = open(dir, O_RDONLY | O_CLOEXEC)
    if dfd >= 0 {
        _ = fsync(dfd)
        close(dfd)
    }
}

/// Reads a whole file into memory; throws `.io` naming the path and the reason.
func readWholeFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        throw TensorCoreError(.io, "cannot open '\(path)'", cause: String(cString: strerror(errno)))
    }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else {
        throw TensorCoreError(.io, "cannot stat '\(path)'", cause: String(cString: strerror(errno)))
    }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        throw TensorCoreError(.io, "'\(path)' is not a regular file")
    }
    let size = Int(st.st_size)
    var failure: TensorCoreError?
    let bytes = [UInt8](unsafeUninitializedCapacity: size) { buf, count in
        var done = 0
        while done < size {
            let n = read(fd, buf.baseAddress! + done, size - done)
            if n < 0 {
                if errno == EINTR { continue }
                failure = TensorCoreError(.io, "cannot read '\(path)'", cause: String(cString: strerror(errno)))
                break
            }
            if n == 0 { break }  // file shrank while reading
            done += n
        }
        count = done
    }
    if let failure { throw failure }
    return bytes
}

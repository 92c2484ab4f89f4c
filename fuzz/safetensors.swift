// libFuzzer target: the safetensors reader (`SafetensorsFile.decode(bytes:)`) on arbitrary bytes.
// A malformed file must come back as a thrown `TensorCoreError`; anything else (trap, overflow,
// out-of-bounds, huge allocation, hang, other error type) is a finding. A file that decodes must
// also survive the writer: encode -> decode gives the same names, shapes, metadata and float bits.
import TensorCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let file: SafetensorsFile
    do {
        file = try SafetensorsFile.decode(bytes: bytes)
    } catch is TensorCoreError {
        return 0
    } catch {
        fatalError("SafetensorsFile.decode threw a non-TensorCoreError: \(type(of: error)): \(error)")
    }
    // Invariants of a decoded file.
    precondition(
        Set(file.names) == Set(file.tensors.keys) && file.names.count == file.tensors.count,
        "names and tensors disagree")
    for (name, t) in file.orderedTensors {
        precondition(
            t.shape.allSatisfy { $0 >= 0 } && t.shape.reduce(1, *) == t.count, "tensor '\(name)': shape/count mismatch")
    }
    // Round trip through the writer.
    let again: SafetensorsFile
    do {
        again = try SafetensorsFile.decode(bytes: try file.encode())
    } catch {
        fatalError("a decoded file does not survive encode -> decode: \(error)")
    }
    precondition(again.metadata == file.metadata, "metadata changed in the round trip")
    precondition(Set(again.names) == Set(file.names), "tensor names changed in the round trip")
    for (name, t) in file.orderedTensors {
        let u = again.tensors[name]!
        precondition(u.shape == t.shape, "tensor '\(name)': shape changed in the round trip")
        precondition(
            zip(u.storage, t.storage).allSatisfy { $0.bitPattern == $1.bitPattern },
            "tensor '\(name)': values changed in the round trip")
    }
    return 0
}

import Foundation
import TensorCore
import TestSupport
import XCTest

/// A fresh temporary directory, removed at the end of the test.
func makeTempDir(_ test: XCTestCase) throws -> String {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("onestep-io-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

final class SafetensorsTests: XCTestCase {
    private func sample() throws -> [(String, Tensor)] {
        [
            ("w", try Tensor(shape: [2, 3], storage: [1, -2.5, 3.25, 0, 1e-7, -1e30])),
            ("b", try Tensor(shape: [3], storage: [0.5, .pi, -0])),
            ("scalar", try Tensor(shape: [], storage: [42])),
            ("empty", try Tensor(shape: [0, 4], storage: [])),
        ]
    }
    private let meta = ["format": "onestep-1", "arch": "mlp", "config": "{\"hidden\": 64, \"name\": \"é\\\"q\"}"]

    /// Header JSON of a hand-built file: 8-byte length, header, data.
    private func raw(_ header: String, data: [UInt8]) -> [UInt8] {
        let h = Array(header.utf8)
        var out = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(h.count) >> (8 * UInt64($0))) }
        out += h + data
        return out
    }

    private func assertRefused(
        _ bytes: [UInt8], _ code: TensorCoreError.Code, _ substrings: [String],
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try SafetensorsFile.decode(bytes: bytes), file: file, line: line) { error in
            guard let e = error as? TensorCoreError else {
                return XCTFail("not a TensorCoreError: \(error)", file: file, line: line)
            }
            XCTAssertEqual(e.code, code, "\(e)", file: file, line: line)
            for s in substrings {
                XCTAssertTrue(e.message.contains(s), "'\(s)' not in: \(e.message)", file: file, line: line)
            }
        }
    }

    func testRoundTripInSwift() throws {
        let dir = try makeTempDir(self)
        let path = dir + "/ck.safetensors"
        try SafetensorsFile.write(tensors: sample(), metadata: meta, to: path)
        let file = try SafetensorsFile.read(path: path)
        XCTAssertEqual(file.metadata, meta)
        XCTAssertEqual(Set(file.names), Set(try sample().map(\.0)))
        for (name, t) in try sample() { XCTAssertEqual(try file.tensor(name), t, name) }
        XCTAssertEqual(
            try SafetensorsFile.decode(bytes: SafetensorsFile.encode(tensors: sample(), metadata: meta)).tensors,
            file.tensors)
    }

    func testEncodingIsDeterministicAndAligned() throws {
        let a = try SafetensorsFile.encode(tensors: sample(), metadata: meta)
        let b = try SafetensorsFile.encode(tensors: sample().reversed(), metadata: meta)
        XCTAssertEqual(a, b)
        let n = (0..<8).reduce(0) { $0 | Int(a[$1]) << (8 * $1) }
        XCTAssertEqual(n % 8, 0)
        let header = String(decoding: a[8..<(8 + n)], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{\"__metadata__\":{\"arch\":\"mlp\""), header)
        XCTAssertTrue(header.contains("\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}"), header)
        XCTAssertEqual(a.count, 8 + n + 4 * (6 + 3 + 1))
    }

    func testMissingTensorErrorListsNames() throws {
        let file = try SafetensorsFile.decode(bytes: SafetensorsFile.encode(tensors: sample()))
        XCTAssertThrowsError(try file.tensor("nope")) { error in
            let e = error as! TensorCoreError
            XCTAssertEqual(e.code, .invalidArgument)
            XCTAssertTrue(e.message.contains("no tensor named 'nope'"), e.message)
            XCTAssertTrue(e.message.contains("'w'"), e.message)
        }
    }

    func testDuplicateAndReservedNamesRefused() throws {
        let t = Tensor(shape: [1])
        XCTAssertThrowsError(try SafetensorsFile.encode(tensors: [("a", t), ("a", t)]))
        XCTAssertThrowsError(try SafetensorsFile.encode(tensors: [("__metadata__", t)]))
    }

    func testSwiftFileOpensInPython() throws {
        let dir = try makeTempDir(self)
        let path = dir + "/swift.safetensors", expected = dir + "/expected.json"
        try SafetensorsFile.write(tensors: sample(), metadata: meta, to: path)
        var json: [String: Any] = ["__metadata__": meta]
        for (name, t) in try sample() {
            json[name] = ["shape": t.shape, "bits": t.storage.map { Int($0.bitPattern) }]
        }
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: expected))
        let script = """
            import sys, json, numpy as np
            from safetensors import safe_open
            from safetensors.numpy import load_file
            path, expected = sys.argv[1], json.load(open(sys.argv[2]))
            meta = expected.pop("__metadata__")
            got = load_file(path)
            assert set(got) == set(expected), (sorted(got), sorted(expected))
            for name, e in expected.items():
                a = got[name]
                assert a.dtype == np.float32, (name, a.dtype)
                assert list(a.shape) == e["shape"], (name, a.shape, e["shape"])
                bits = np.array(e["bits"], dtype=np.uint32).reshape(e["shape"])
                assert np.array_equal(a.view(np.uint32), bits), (name, a)
            with safe_open(path, framework="numpy") as f:
                assert f.metadata() == meta, (f.metadata(), meta)
            print("ok", len(got))
            """
        let out = try CrossCheckPython.run(script, [path, expected])
        XCTAssertEqual(out.trimmingCharacters(in: .whitespacesAndNewlines), "ok 4")
    }

    func testPythonFileLoadsInSwift() throws {
        let dir = try makeTempDir(self)
        let path = dir + "/py.safetensors"
        let script = """
            import sys, numpy as np
            from safetensors.numpy import save_file
            w = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7.5) / 3
            labels = np.array([0, 9, 3, -1, 123456], dtype=np.int64)
            save_file({"weight": w, "labels": labels, "half": np.array([1.5, -0.25, 65504], dtype=np.float16),
                       "dbl": np.array([[1e-3], [2.0]], dtype=np.float64), "bytes": np.array([0, 7, 255], dtype=np.uint8)},
                      sys.argv[1], metadata={"format": "onestep-1", "arch": "unet"})
            """
        try CrossCheckPython.run(script, [path])
        let file = try SafetensorsFile.read(path: path)
        XCTAssertEqual(file.metadata, ["format": "onestep-1", "arch": "unet"])
        let w = try file.tensor("weight")
        XCTAssertEqual(w.shape, [2, 3, 4])
        XCTAssertEqual(w.storage, (0..<24).map { (Float($0) - 7.5) / 3 })
        let labels = try file.tensor("labels")
        XCTAssertEqual(labels.shape, [5])
        XCTAssertEqual(labels.storage, [0, 9, 3, -1, 123456])
        XCTAssertEqual(try file.tensor("half").storage, [1.5, -0.25, 65504])
        XCTAssertEqual(try file.tensor("dbl").storage, [Float(1e-3), 2])
        XCTAssertEqual(try file.tensor("dbl").shape, [2, 1])
        XCTAssertEqual(try file.tensor("bytes").storage, [0, 7, 255])
    }

    func testCorruptHeadersRefused() {
        let eight = [UInt8](repeating: 0, count: 8)
        assertRefused(raw("{\"w\": {\"dtype\": \"F32\", ", data: []), .corruptFile, ["not valid JSON"])
        assertRefused(raw("[1, 2]", data: []), .corruptFile, ["not an object"])
        var badUTF8 = raw("{\"x\":{}}", data: eight)
        badUTF8[8 + 2] = 0xFF
        assertRefused(badUTF8, .corruptFile, ["not valid UTF-8"])
        // Header length past the end of the file.
        var long = raw("{}", data: [])
        long[0] = 200
        assertRefused(long, .corruptFile, ["truncated", "header length 200", "file has 10"])
        var huge = raw("{}", data: [])
        huge[5] = 1
        assertRefused(huge, .corruptFile, ["exceeds the limit"])
        assertRefused([1, 0, 0], .corruptFile, ["truncated", "3 bytes"])
        assertRefused(raw("{\"__metadata__\":{\"a\":1}}", data: []), .corruptFile, ["__metadata__", "'a'"])
    }

    func testBadEntriesRefused() {
        let e32 = [UInt8](repeating: 0, count: 32)
        assertRefused(
            raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,48]}}", data: e32), .corruptFile,
            ["tensor 'w'", "[0, 48]", "past the end", "32 bytes"])
        assertRefused(
            raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,16]}}", data: Array(e32[..<16])),
            .corruptFile, ["tensor 'w'", "hold 16 bytes but F32 shape [2, 4] needs 32"])
        assertRefused(
            raw("{\"w\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,8]}}", data: Array(e32[..<8])),
            .corruptFile, ["tensor 'w'", "I64 shape [2] needs 16"])
        assertRefused(
            raw("{\"w\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", data: Array(e32[..<8])),
            .unsupported, ["tensor 'w'", "unsupported dtype 'Q7'"])
        assertRefused(
            raw("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", data: Array(e32[..<8])),
            .corruptFile, ["tensor 'w'", "dtype"])
        assertRefused(
            raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", data: Array(e32[..<8])),
            .corruptFile, ["tensor 'w'", "non-negative"])
        assertRefused(
            raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", data: Array(e32[..<8])),
            .corruptFile, ["tensor 'w'", "shape"])
        assertRefused(
            raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", data: Array(e32[..<8])),
            .corruptFile, ["tensor 'w'", "begin after end"])
        assertRefused(
            raw(
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}",
                data: Array(e32[..<8])),
            .corruptFile, ["tensor 'w'", "too large"])
        assertRefused(
            raw(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                    + "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", data: Array(e32[..<24])),
            .corruptFile, ["'a' [0, 16]", "'b' [8, 24]", "overlap"])
        assertRefused(
            raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", data: Array(e32[..<16])),
            .corruptFile, ["belong to no tensor"])
        assertRefused(
            raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data: Array(e32[..<16])),
            .corruptFile, ["cover only the first 8"])
    }

    func testTruncatedFileRefused() throws {
        let full = try SafetensorsFile.encode(tensors: sample(), metadata: meta)
        let n = (0..<8).reduce(0) { $0 | Int(full[$1]) << (8 * $1) }
        assertRefused(Array(full.dropLast(4)), .corruptFile, ["past the end", "truncated"])
        assertRefused(Array(full.prefix(8 + n / 2)), .corruptFile, ["truncated", "header length \(n)"])
        assertRefused(Array(full.prefix(5)), .corruptFile, ["truncated", "5 bytes"])
    }

    func testAtomicWriteLeavesNoTempFilesAndReplaces() throws {
        let dir = try makeTempDir(self)
        let path = dir + "/ck.safetensors"
        try SafetensorsFile.write(tensors: [("a", Tensor(shape: [2], repeating: 1))], metadata: [:], to: path)
        try SafetensorsFile.write(tensors: sample(), metadata: meta, to: path)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["ck.safetensors"])
        XCTAssertEqual(try SafetensorsFile.read(path: path).metadata, meta)
    }

    func testUnwritableDirectoryThrowsIO() throws {
        let dir = try makeTempDir(self)
        var targets = [dir + "/missing/sub/ck.safetensors"]
        let blocker = dir + "/file"
        XCTAssertTrue(FileManager.default.createFile(atPath: blocker, contents: Data()))
        targets.append(blocker + "/ck.safetensors")
        if geteuid() != 0 {  // root ignores directory permissions
            let ro = dir + "/ro"
            try FileManager.default.createDirectory(
                atPath: ro, withIntermediateDirectories: false,
                attributes: [.posixPermissions: 0o555])
            targets.append(ro + "/ck.safetensors")
        }
        for target in targets {
            XCTAssertThrowsError(try SafetensorsFile.write(tensors: sample(), metadata: [:], to: target)) { error in
                XCTAssertEqual((error as? TensorCoreError)?.code, .io, "\(error)")
                XCTAssertTrue("\(error)".contains(target), "\(error)")
            }
        }
        XCTAssertThrowsError(try SafetensorsFile.read(path: dir + "/nothing.safetensors")) { error in
            XCTAssertEqual((error as? TensorCoreError)?.code, .io)
        }
    }
}

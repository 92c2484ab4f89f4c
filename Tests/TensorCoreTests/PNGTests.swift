import Foundation
import TensorCore
import TestSupport
import XCTest

final class PNGTests: XCTestCase {
    /// Pixels as Pillow reads them from `path`: mode, width, height and hex bytes.
    private func pillowRead(_ path: String) throws -> (mode: String, width: Int, height: Int, pixels: [UInt8]) {
        let script = """
            import sys
            from PIL import Image
            im = Image.open(sys.argv[1])
            im.load()
            print(im.mode, im.size[0], im.size[1], im.tobytes().hex())
            """
        let parts = try CrossCheckPython.run(script, [path]).split(separator: " ")
        guard parts.count == 4 else { throw TensorCoreError(.io, "unexpected python output \(parts)") }
        let hex = Array(parts[3].trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        func nibble(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }
        let bytes = stride(from: 0, to: hex.count, by: 2).map { nibble(hex[$0]) << 4 | nibble(hex[$0 + 1]) }
        return (String(parts[0]), Int(parts[1])!, Int(parts[2])!, bytes)
    }

    private func pattern(_ count: Int, _ salt: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 * 37 + salt * 11 + ($0 >> 3)) }
    }

    func testGrayscaleReadsBackInPillow() throws {
        let dir = try makeTempDir(self), path = dir + "/gray.png"
        let pixels = pattern(7 * 5, 1)
        try PNG.write(pixels: pixels, width: 7, height: 5, channels: 1, to: path)
        let got = try pillowRead(path)
        XCTAssertEqual(got.mode, "L")
        XCTAssertEqual(got.width, 7)
        XCTAssertEqual(got.height, 5)
        XCTAssertEqual(got.pixels, pixels)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["gray.png"])
    }

    func testRGBReadsBackInPillow() throws {
        let dir = try makeTempDir(self), path = dir + "/rgb.png"
        let pixels = pattern(3 * 4 * 3, 2)
        try PNG.write(pixels: pixels, width: 3, height: 4, channels: 3, to: path)
        let got = try pillowRead(path)
        XCTAssertEqual(got.mode, "RGB")
        XCTAssertEqual(got.width, 3)
        XCTAssertEqual(got.height, 4)
        XCTAssertEqual(got.pixels, pixels)
    }

    func testGridLayoutAndPillowReadBack() throws {
        // Three 1-channel 2x3 images, 2 columns, padding 1: 2*3+3 = 9 wide, 2*2+3 = 7 high.
        let values: [Float] = [-1, 0, 1, -2, 2, 0.5, 0, 0, 0, 0, 0, 0, 1, 1, 1, -1, -1, -1]
        let batch = try Tensor(shape: [3, 1, 2, 3], storage: values)
        let grid = try PNG.grid(batch, columns: 2, padding: 1)
        XCTAssertEqual(grid.width, 9)
        XCTAssertEqual(grid.height, 7)
        XCTAssertEqual(grid.channels, 1)
        // round((x + 1) / 2 * 255) clamped: -1 -> 0, 0 -> 128 (127.5 rounds up), 1 -> 255, 0.5 -> 191.
        let q: [Float: UInt8] = [-2: 0, -1: 0, 0: 128, 0.5: 191, 1: 255, 2: 255]
        var expected = [UInt8](repeating: 0, count: 9 * 7)
        for i in 0..<3 {
            let x0 = 1 + (i % 2) * 4, y0 = 1 + (i / 2) * 3
            for y in 0..<2 { for x in 0..<3 { expected[(y0 + y) * 9 + x0 + x] = q[values[i * 6 + y * 3 + x]]! } }
        }
        XCTAssertEqual(grid.pixels, expected)

        let dir = try makeTempDir(self), path = dir + "/grid.png"
        try PNG.write(grid, to: path)
        let got = try pillowRead(path)
        XCTAssertEqual(got.mode, "L")
        XCTAssertEqual(got.pixels, expected)
    }

    func testRGBGridIsInterleavedAndMatchesPillow() throws {
        // One 3-channel 1x2 image in planar layout, range 0...1, no padding.
        let planar: [Float] = [0, 1, 0.2, 0.4, 1.5, -0.1]
        let grid = try PNG.grid(
            images: [planar], channels: 3, height: 1, width: 2, columns: 4, padding: 0, range: 0...1)
        XCTAssertEqual(grid.width, 2)
        XCTAssertEqual(grid.height, 1)
        XCTAssertEqual(grid.pixels, [0, 51, 255, 255, 102, 0])
        let dir = try makeTempDir(self), path = dir + "/rgbgrid.png"
        try PNG.write(grid, to: path)
        let got = try pillowRead(path)
        XCTAssertEqual(got.mode, "RGB")
        XCTAssertEqual(got.pixels, grid.pixels)
    }

    func testDecodeRoundTrip() throws {
        for channels in [1, 3] {
            let image = PNG.Image(
                pixels: pattern(11 * 6 * channels, channels), width: 11, height: 6, channels: channels)
            let decoded = try PNG.decode(PNG.encode(image))
            XCTAssertEqual(decoded, image)
        }
        let dir = try makeTempDir(self), path = dir + "/rt.png"
        try PNG.write(pixels: [1, 2, 3, 4], width: 2, height: 2, channels: 1, to: path)
        XCTAssertEqual(try PNG.read(path: path).pixels, [1, 2, 3, 4])
    }

    func testBadArgumentsThrow() throws {
        XCTAssertThrowsError(try PNG.encode(pixels: [0, 0, 0], width: 2, height: 2, channels: 1)) { error in
            XCTAssertEqual((error as? TensorCoreError)?.code, .invalidArgument)
            XCTAssertTrue("\(error)".contains("needs 4 bytes, got 3"), "\(error)")
        }
        XCTAssertThrowsError(try PNG.encode(pixels: [0, 0, 0, 0, 0, 0, 0, 0], width: 2, height: 2, channels: 2)) {
            error in
            XCTAssertEqual((error as? TensorCoreError)?.code, .invalidArgument)
            XCTAssertTrue("\(error)".contains("channels"), "\(error)")
        }
        XCTAssertThrowsError(try PNG.encode(pixels: [], width: 0, height: 0, channels: 1))
        XCTAssertThrowsError(try PNG.grid(Tensor(shape: [1, 2, 2, 2]), columns: 1))
        XCTAssertThrowsError(try PNG.grid(Tensor(shape: [2, 2]), columns: 1))
        XCTAssertThrowsError(try PNG.grid(Tensor(shape: [1, 1, 2, 2]), columns: 0))
        XCTAssertThrowsError(try PNG.grid(images: [[1, 2]], channels: 1, height: 2, width: 2, columns: 1))
        XCTAssertThrowsError(try PNG.decode([0x89, 0x50, 0x4E, 0x47, 1, 2, 3])) { error in
            XCTAssertEqual((error as? TensorCoreError)?.code, .corruptFile)
            XCTAssertTrue("\(error)".contains("libpng"), "\(error)")
        }
        XCTAssertThrowsError(
            try PNG.write(
                pixels: [0], width: 1, height: 1, channels: 1,
                to: "/nonexistent-dir-onestep/x.png")
        ) { error in
            XCTAssertEqual((error as? TensorCoreError)?.code, .io)
        }
    }

    func testQuantizeFormula() {
        XCTAssertEqual(PNG.quantize(-1), 0)
        XCTAssertEqual(PNG.quantize(1), 255)
        XCTAssertEqual(PNG.quantize(0), 128)
        XCTAssertEqual(PNG.quantize(-3), 0)
        XCTAssertEqual(PNG.quantize(7), 255)
        XCTAssertEqual(PNG.quantize(.nan), 0)
        XCTAssertEqual(PNG.quantize(0.3, range: 0...1), 77)  // 76.5 rounds half away from zero
    }
}

// PNG encoding and decoding through libpng's simplified API (png_image_*), and image grids of
// float tensors. The only file that imports CPNG.
import CPNG

/// 8-bit PNG images: encode, decode, atomic write, and grids of float images.
public enum PNG {
    /// 8-bit pixels, row-major, channels interleaved (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).
    public struct Image: Sendable, Equatable {
        public var pixels: [UInt8]
        public var width: Int
        public var height: Int
        public var channels: Int

        public init(pixels: [UInt8], width: Int, height: Int, channels: Int) {
            self.pixels = pixels
            self.width = width
            self.height = height
            self.channels = channels
        }
    }

    // png.h format bits (PNG_FORMAT_FLAG_ALPHA / _COLOR) and PNG_IMAGE_VERSION.
    private static let flagAlpha: UInt32 = 0x01
    private static let flagColor: UInt32 = 0x02
    private static let imageVersion: UInt32 = 1
    /// Largest decoded image accepted (bytes of pixels), so a hostile header cannot demand gigabytes.
    public static let maxDecodedBytes = 1 << 28

    /// PNG bytes of `pixels` (`height` rows of `width * channels` bytes; channels 1 = gray, 3 = RGB).
    /// Throws `invalidArgument` for bad sizes or channels, `io` if libpng fails (with its message).
    public static func encode(pixels: [UInt8], width: Int, height: Int, channels: Int) throws -> [UInt8] {
        guard channels == 1 || channels == 3 else {
            throw TensorCoreError(.invalidArgument, "PNG channels must be 1 (gray) or 3 (RGB), got \(channels)")
        }
        guard width > 0, height > 0, width <= 1 << 24, height <= 1 << 24 else {
            throw TensorCoreError(.invalidArgument, "PNG size must be positive (at most 2^24), got \(width)x\(height)")
        }
        guard pixels.count == width * height * channels else {
            throw TensorCoreError(
                .invalidArgument,
                "PNG \(width)x\(height)x\(channels) needs \(width * height * channels) bytes, got \(pixels.count)")
        }
        var image = png_image()
        image.version = imageVersion
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = channels == 3 ? flagColor : 0
        let stride = Int32(width * channels)
        var size: png_alloc_size_t = 0
        // First call measures, second call writes (the documented way to size the buffer).
        let measured = pixels.withUnsafeBytes { p in
            png_image_write_to_memory(&image, nil, &size, 0, p.baseAddress, stride, nil)
        }
        guard measured != 0 else { throw libpngError("cannot encode PNG", &image) }
        var out = [UInt8](repeating: 0, count: Int(size))
        let written = out.withUnsafeMutableBytes { o in
            pixels.withUnsafeBytes { p in
                png_image_write_to_memory(&image, o.baseAddress, &size, 0, p.baseAddress, stride, nil)
            }
        }
        guard written != 0 else { throw libpngError("cannot encode PNG", &image) }
        out.removeLast(out.count - Int(size))
        return out
    }

    /// PNG bytes of `image` (channels 1 or 3).
    public static func encode(_ image: Image) throws -> [UInt8] {
        try encode(pixels: image.pixels, width: image.width, height: image.height, channels: image.channels)
    }

    /// Encodes and writes atomically to `path` (temporary file, fsync, rename); `.io` on failure.
    public static func write(pixels: [UInt8], width: Int, height: Int, channels: Int, to path: String) throws {
        try atomicWriteFile(encode(pixels: pixels, width: width, height: height, channels: channels), to: path)
    }

    /// Encodes and writes `image` atomically to `path`.
    public static func write(_ image: Image, to path: String) throws {
        try write(pixels: image.pixels, width: image.width, height: image.height, channels: image.channels, to: path)
    }

    /// Decodes PNG bytes to 8-bit pixels, keeping color (1 or 3 channels) and alpha (+1 channel) as
    /// stored; palette images come out as RGB(A), 16-bit samples are reduced to 8 bits.
    /// Throws `corruptFile` with libpng's message for bytes that are not a readable PNG.
    public static func decode(_ bytes: [UInt8]) throws -> Image {
        // libpng keeps the input pointer from begin_read to finish_read: both run in one closure.
        try bytes.withUnsafeBytes { b in
            var image = png_image()
            image.version = imageVersion
            guard png_image_begin_read_from_memory(&image, b.baseAddress, b.count) != 0 else {
                throw libpngError("cannot read PNG", &image, code: .corruptFile)
            }
            image.format &= (flagAlpha | flagColor)
            let channels = (image.format & flagColor != 0 ? 3 : 1) + (image.format & flagAlpha != 0 ? 1 : 0)
            let width = Int(image.width), height = Int(image.height)
            guard width * height * channels <= maxDecodedBytes else {
                png_image_free(&image)
                throw TensorCoreError(
                    .corruptFile,
                    "PNG of \(width)x\(height)x\(channels) exceeds the decode limit of \(maxDecodedBytes) bytes")
            }
            var pixels = [UInt8](repeating: 0, count: width * height * channels)
            let finished = pixels.withUnsafeMutableBytes { p in
                png_image_finish_read(&image, nil, p.baseAddress, Int32(width * channels), nil)
            }
            guard finished != 0 else { throw libpngError("cannot read PNG", &image, code: .corruptFile) }
            return Image(pixels: pixels, width: width, height: height, channels: channels)
        }
    }

    /// Reads and decodes the PNG file at `path`.
    public static func read(path: String) throws -> Image {
        let bytes = try readWholeFile(path)
        do {
            return try decode(bytes)
        } catch let e as TensorCoreError {
            throw TensorCoreError(e.code, "\(path): \(e.message)", cause: e.cause)
        }
    }

    /// One byte from a float: `round((x - lo) / (hi - lo) * 255)` clamped to 0...255, rounding half
    /// away from zero; NaN gives 0.
    @inlinable
    public static func quantize(_ x: Float, range: ClosedRange<Float> = -1...1) -> UInt8 {
        let v = ((x - range.lowerBound) / (range.upperBound - range.lowerBound) * 255).rounded()
        guard v == v else { return 0 }
        return UInt8(min(max(v, 0), 255))
    }

    /// Tiles a batch `[N, C, H, W]` (C = 1 or 3) into one image, `columns` per row (fewer if N is
    /// smaller), with `padding` black pixels between tiles and around the border (like torchvision's
    /// make_grid). Each value maps to a byte with `quantize(_:range:)`.
    /// Size: width = cols * W + (cols + 1) * padding, height = rows * H + (rows + 1) * padding.
    public static func grid(
        _ batch: Tensor, columns: Int, padding: Int = 2,
        range: ClosedRange<Float> = -1...1
    ) throws -> Image {
        guard batch.rank == 4 else {
            throw TensorCoreError(.shapeMismatch, "PNG.grid needs a [N, C, H, W] tensor, got shape \(batch.shape)")
        }
        let n = batch.shape[0], c = batch.shape[1], h = batch.shape[2], w = batch.shape[3]
        guard c == 1 || c == 3 else {
            throw TensorCoreError(.invalidArgument, "PNG.grid needs 1 or 3 channels, got \(c)")
        }
        guard n > 0, h > 0, w > 0 else {
            throw TensorCoreError(.invalidArgument, "PNG.grid needs a non-empty batch, got shape \(batch.shape)")
        }
        guard columns > 0, padding >= 0 else {
            throw TensorCoreError(
                .invalidArgument, "PNG.grid needs columns > 0 and padding >= 0, got \(columns), \(padding)")
        }
        guard range.upperBound > range.lowerBound else {
            throw TensorCoreError(.invalidArgument, "PNG.grid needs a range with hi > lo, got \(range)")
        }
        let cols = min(columns, n), rows = (n + cols - 1) / cols
        let width = cols * w + (cols + 1) * padding, height = rows * h + (rows + 1) * padding
        var pixels = [UInt8](repeating: 0, count: width * height * c)
        batch.withUnsafeBufferPointer { src in
            for i in 0..<n {
                let x0 = padding + (i % cols) * (w + padding), y0 = padding + (i / cols) * (h + padding)
                for ch in 0..<c {
                    let plane = (i * c + ch) * h * w
                    for y in 0..<h {
                        let row = ((y0 + y) * width + x0) * c + ch
                        for x in 0..<w {
                            pixels[row + x * c] = quantize(src[plane + y * w + x], range: range)
                        }
                    }
                }
            }
        }
        return Image(pixels: pixels, width: width, height: height, channels: c)
    }

    /// `grid` of images given as flat `[C * H * W]` arrays (planar, channel first).
    public static func grid(
        images: [[Float]], channels: Int, height: Int, width: Int, columns: Int,
        padding: Int = 2, range: ClosedRange<Float> = -1...1
    ) throws -> Image {
        let each = channels * height * width
        for (i, im) in images.enumerated() where im.count != each {
            throw TensorCoreError(
                .shapeMismatch,
                "PNG.grid image \(i) has \(im.count) values, expected \(channels)x\(height)x\(width) = \(each)")
        }
        let batch = try Tensor(shape: [images.count, channels, height, width], storage: images.flatMap { $0 })
        return try grid(batch, columns: columns, padding: padding, range: range)
    }

    private static func libpngError(
        _ what: String, _ image: inout png_image,
        code: TensorCoreError.Code = .io
    ) -> TensorCoreError {
        let message = withUnsafeBytes(of: image.message) { raw -> String in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
        png_image_free(&image)
        return TensorCoreError(code, what, cause: message.isEmpty ? "libpng gave no message" : "libpng: \(message)")
    }
}

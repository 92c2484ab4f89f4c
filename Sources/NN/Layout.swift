/// Conversions between the external NCHW layout and the internal CBHW layout.
public enum Layout {
    /// y [C, B, HW] from x [B, C, HW].
    public static func nchwToCBHW(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, hw: Int) {
        if channels == 1 || batch == 1 { y.update(from: x, count: batch * channels * hw); return }
        for b in 0..<batch {
            for c in 0..<channels {
                (y + (c * batch + b) * hw).update(from: x + (b * channels + c) * hw, count: hw)
            }
        }
    }

    /// y [B, C, HW] from x [C, B, HW].
    public static func cbhwToNCHW(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, hw: Int) {
        if channels == 1 || batch == 1 { y.update(from: x, count: batch * channels * hw); return }
        for b in 0..<batch {
            for c in 0..<channels {
                (y + (b * channels + c) * hw).update(from: x + (c * batch + b) * hw, count: hw)
            }
        }
    }
}

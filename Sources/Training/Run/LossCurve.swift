import Foundation
import TensorCore

/// Renders a series as a small grayscale line plot (log10 y axis when all values are positive).
public enum LossCurve {
    public static func render(_ values: [Double], width: Int = 480, height: Int = 240) -> PNG.Image {
        var px = [UInt8](repeating: 255, count: width * height)
        let margin = 20
        // Axes.
        for x in margin..<(width - margin / 2) { px[(height - margin) * width + x] = 0 }
        for y in (margin / 2)..<(height - margin) { px[y * width + margin] = 0 }
        let finite = values.filter { $0.isFinite }
        guard finite.count >= 2 else { return PNG.Image(pixels: px, width: width, height: height, channels: 1) }
        let useLog = finite.allSatisfy { $0 > 0 }
        let ys = values.map { useLog ? log10(max($0, 1e-30)) : $0 }
        let lo = ys.filter { $0.isFinite }.min()!, hi = ys.filter { $0.isFinite }.max()!
        let span = hi > lo ? hi - lo : 1
        let plotW = width - margin - margin / 2, plotH = height - margin - margin / 2
        var prev: (Int, Int)?
        for (i, v) in ys.enumerated() where v.isFinite {
            let x = margin + Int(Double(i) / Double(ys.count - 1) * Double(plotW - 1))
            let y = (height - margin) - Int((v - lo) / span * Double(plotH - 1))
            if let p = prev { line(&px, width, p, (x, y)) }
            prev = (x, y)
        }
        return PNG.Image(pixels: px, width: width, height: height, channels: 1)
    }

    private static func line(_ px: inout [UInt8], _ w: Int, _ a: (Int, Int), _ b: (Int, Int)) {
        let n = max(abs(b.0 - a.0), abs(b.1 - a.1), 1)
        for k in 0...n {
            let x = a.0 + (b.0 - a.0) * k / n, y = a.1 + (b.1 - a.1) * k / n
            if x >= 0, y >= 0, x < w, y * w + x < px.count { px[y * w + x] = 40 }
        }
    }
}

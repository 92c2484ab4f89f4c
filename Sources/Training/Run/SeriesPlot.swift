import Foundation
import TensorCore

/// Several series on one RGB line plot (x linear, y log10 when every value is positive), each in its
/// own colour, with optional horizontal reference lines (grey). The only text is the ticks' numbers
/// (`PixelFont`): the caller names the axes and the colours in the document that shows the figure
/// (`SeriesPlot.palette`).
public enum SeriesPlot {
    public struct Series: Sendable {
        public var points: [(x: Double, y: Double)]
        public var color: Color
        public init(points: [(x: Double, y: Double)], color: Color) {
            self.points = points
            self.color = color
        }
    }

    public struct Color: Sendable, Equatable {
        public var name: String
        public var rgb: (UInt8, UInt8, UInt8)
        public static func == (a: Color, b: Color) -> Bool { a.name == b.name }
    }

    /// Ten colours that stay apart on white (Tableau 10), with the names a legend uses.
    public static let palette: [Color] = [
        Color(name: "blue", rgb: (31, 119, 180)), Color(name: "orange", rgb: (255, 127, 14)),
        Color(name: "green", rgb: (44, 160, 44)), Color(name: "red", rgb: (214, 39, 40)),
        Color(name: "purple", rgb: (148, 103, 189)), Color(name: "brown", rgb: (140, 86, 75)),
        Color(name: "pink", rgb: (227, 119, 194)), Color(name: "olive", rgb: (188, 189, 34)),
        Color(name: "cyan", rgb: (23, 190, 207)), Color(name: "black", rgb: (0, 0, 0)),
    ]

    /// The plot; axes span the data (and the references). Tick marks, each with its number: x at
    /// `xTicks` (nil: each distinct x of the data; a label that would overlap the one before it is
    /// left out), y at each power of ten inside the range on a log axis, else (linear, or a log
    /// range within one decade) at about five round numbers (`niceTicks`). `markers`: a dot on
    /// every point (off for long series such as loss curves).
    public static func render(
        _ series: [Series], references: [Double] = [], xTicks: [Double]? = nil, markers: Bool = true,
        width: Int = 640, height: Int = 400
    ) -> PNG.Image {
        var px = [UInt8](repeating: 255, count: width * height * 3)
        let left = 40, right = 12, top = 12, bottom = 30
        let plotW = width - left - right, plotH = height - top - bottom
        func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
            guard x >= 0, y >= 0, x < width, y < height else { return }
            let i = (y * width + x) * 3
            px[i] = c.0; px[i + 1] = c.1; px[i + 2] = c.2
        }
        for x in left...(left + plotW) { set(x, top + plotH, (0, 0, 0)) }
        for y in top...(top + plotH) { set(left, y, (0, 0, 0)) }
        let xs = series.flatMap { $0.points.map(\.x) }.filter(\.isFinite)
        let ys = (series.flatMap { $0.points.map(\.y) } + references).filter(\.isFinite)
        guard let x0 = xs.min(), let x1 = xs.max(), let yMin = ys.min(), let yMax = ys.max() else {
            return PNG.Image(pixels: px, width: width, height: height, channels: 3)
        }
        let useLog = yMin > 0
        let f = { (y: Double) in useLog ? log10(y) : y }
        var lo = f(yMin), hi = f(yMax)
        if hi - lo < 1e-9 { lo -= 0.5; hi += 0.5 }
        let pad = (hi - lo) * 0.04
        lo -= pad; hi += pad
        let xSpan = x1 > x0 ? x1 - x0 : 1
        func X(_ x: Double) -> Int { left + Int(((x - x0) / xSpan * Double(plotW - 1)).rounded()) }
        func row(_ fy: Double) -> Int { top + plotH - Int(((fy - lo) / (hi - lo) * Double(plotH - 1)).rounded()) }
        func Y(_ y: Double) -> Int { row(f(y)) }
        let black: (UInt8, UInt8, UInt8) = (0, 0, 0), scale = 2, textH = PixelFont.height(scale: scale)
        var labelEnd = Int.min
        for x in xTicks ?? Set(xs).sorted() where x >= x0 && x <= x1 {
            for d in 1...5 { set(X(x), top + plotH + d, black) }
            let text = PixelFont.label(x), w = PixelFont.width(text, scale: scale)
            let start = min(max(X(x) - w / 2, 0), width - w)
            guard start > labelEnd + 2 * scale else { continue }
            PixelFont.draw(text, x: start, y: top + plotH + 8, scale: scale) { set($0, $1, black) }
            labelEnd = start + w
        }
        if !useLog || floor(hi) - ceil(lo) < 1 {
            // Linear, or a log range with fewer than two decades inside: round numbers in value space.
            let (a, b) = useLog ? (pow(10, lo), pow(10, hi)) : (lo, hi)
            for v in niceTicks(a, b) {
                let y = useLog ? row(log10(v)) : row(v)
                for d in 1...5 { set(left - d, y, black) }
                let text = PixelFont.label(v)
                PixelFont.draw(
                    text, x: max(0, left - 7 - PixelFont.width(text, scale: scale)), y: y - textH / 2, scale: scale
                ) {
                    set($0, $1, black)
                }
            }
        } else {
            var p = floor(lo)
            while p <= hi {
                if p >= lo {
                    let y = row(p)
                    for d in 1...5 { set(left - d, y, black) }
                    let text = PixelFont.decade(Int(p))
                    PixelFont.draw(
                        text, x: left - 7 - PixelFont.width(text, scale: scale), y: y - textH / 2, scale: scale
                    ) { set($0, $1, black) }
                }
                p += 1
            }
        }
        for r in references where r.isFinite {
            let y = Y(r)
            var x = left + 1
            while x < left + plotW {
                for k in 0..<6 where x + k < left + plotW { set(x + k, y, (150, 150, 150)) }; x += 10
            }
        }
        for s in series {
            let pts = s.points.filter { $0.x.isFinite && $0.y.isFinite }.sorted { $0.x < $1.x }
            for (a, b) in zip(pts, pts.dropFirst()) { line(X(a.x), Y(a.y), X(b.x), Y(b.y), s.color.rgb, set) }
            guard markers else { continue }
            for p in pts { for dx in -2...2 { for dy in -2...2 { set(X(p.x) + dx, Y(p.y) + dy, s.color.rgb) } } }
        }
        return PNG.Image(pixels: px, width: width, height: height, channels: 3)
    }

    /// About `count` round numbers (1, 2 or 5 times a power of ten apart) inside `lo...hi`, each
    /// rounded to its step so that its label is short.
    public static func niceTicks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard lo.isFinite, hi.isFinite, hi > lo, count > 0 else { return [] }
        let raw = (hi - lo) / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var out: [Double] = []
        var k = ceil(lo / step)
        while k * step <= hi, out.count <= 2 * count {
            let v = k * step
            // Rounded to the step's decimals: 0.30000000000000004 reads 0.3.
            let digits = max(0, -Int(floor(log10(step))))
            let p = pow(10, Double(digits))
            out.append((v * p).rounded() / p)
            k += 1
        }
        return out
    }

    private static func line(
        _ ax: Int, _ ay: Int, _ bx: Int, _ by: Int, _ c: (UInt8, UInt8, UInt8),
        _ set: (Int, Int, (UInt8, UInt8, UInt8)) -> Void
    ) {
        let n = max(abs(bx - ax), abs(by - ay), 1)
        for k in 0...n {
            let x = ax + (bx - ax) * k / n, y = ay + (by - ay) * k / n
            set(x, y, c); set(x, y + 1, c)
        }
    }
}

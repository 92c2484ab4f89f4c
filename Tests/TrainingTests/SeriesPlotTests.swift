import TensorCore
import Training
import XCTest

/// The study's line plot: each series in its own colour where its points fall, the reference line
/// in grey, a log axis when every value is positive.
final class SeriesPlotTests: XCTestCase {
    func pixel(_ image: PNG.Image, _ x: Int, _ y: Int) -> [UInt8] {
        let i = (y * image.width + x) * 3
        return Array(image.pixels[i..<(i + 3)])
    }

    func testSeriesLandWhereTheirValuesAre() {
        let blue = SeriesPlot.palette[0], red = SeriesPlot.palette[3]
        let image = SeriesPlot.render(
            [
                SeriesPlot.Series(points: [(0, 100), (10, 10), (20, 1)], color: blue),
                SeriesPlot.Series(points: [(0, 1), (20, 50)], color: red),
            ],
            references: [10], width: 200, height: 100)
        XCTAssertEqual(image.channels, 3)
        XCTAssertEqual(image.pixels.count, 200 * 100 * 3)
        let rgb = { (c: SeriesPlot.Color) in [c.rgb.0, c.rgb.1, c.rgb.2] }
        // Plot area: x from 40 to 188, y from 12 (top) to 70 (bottom), log10 y over [0, 2] padded 4 %.
        func y(_ v: Double) -> Int {
            let lo = -0.08, hi = 2.08
            return 12 + 58 - Int(((log10(v) - lo) / (hi - lo) * 57).rounded())
        }
        XCTAssertEqual(
            pixel(image, 40 + 74, y(10)), rgb(blue), "the middle point of the falling series (log axis: halfway)")
        XCTAssertEqual(pixel(image, 188 - 1, y(50)), rgb(red), "the last point of the rising series")
        XCTAssertEqual(pixel(image, 40 + 2, y(100)), rgb(blue), "the first point of the falling series")
        XCTAssertTrue(
            (45..<100).contains { pixel(image, $0, y(10)) == [150, 150, 150] }, "the grey reference line at 10")
        XCTAssertEqual(pixel(image, 5, 5), [255, 255, 255], "background outside the plot")
    }

    /// The black pixels `PixelFont` lights for `text` at (x, y), scale 2.
    func glyphPixels(_ text: String, x: Int, y: Int) -> Set<[Int]> {
        var out = Set<[Int]>()
        PixelFont.draw(text, x: x, y: y, scale: 2) { out.insert([$0, $1]) }
        return out
    }

    func black(_ image: PNG.Image, in xs: Range<Int>, _ ys: Range<Int>) -> Set<[Int]> {
        var out = Set<[Int]>()
        for y in ys { for x in xs where pixel(image, x, y) == [0, 0, 0] { out.insert([x, y]) } }
        return out
    }

    func testTicksCarryTheirNumbers() {
        let image = SeriesPlot.render(
            [SeriesPlot.Series(points: [(0, 1000), (6400, 100), (12800, 10)], color: SeriesPlot.palette[0])],
            width: 200, height: 100)
        // Plot rows 12 to 70, the axis at column 40, ticks in columns 35 to 39: three decades (1000, 100, 10).
        let ticks = (12...70).filter { pixel(image, 37, $0) == [0, 0, 0] }
        guard ticks.count == 3 else { return XCTFail("decade ticks at rows \(ticks)") }
        let y100 = ticks[1]
        XCTAssertEqual(Double(y100), 12 + 58 - 28.5, accuracy: 1, "log axis: 100 halfway between 10 and 1000")
        let w = PixelFont.width("100", scale: 2)
        XCTAssertEqual(
            black(image, in: 0..<40 - 5, (y100 - 8)..<(y100 + 8)), glyphPixels("100", x: 40 - 7 - w, y: y100 - 5),
            "'100' right-aligned left of its tick, centred on it, and nothing else there")
        let below = 12 + 58 + 6..<100
        let right = glyphPixels("12800", x: 200 - PixelFont.width("12800", scale: 2), y: 12 + 58 + 8)
        XCTAssertTrue(
            right.isSubset(of: black(image, in: 100..<200, below)), "the last x label is pulled inside the image")
        XCTAssertTrue(
            glyphPixels("0", x: 40 - 3, y: 12 + 58 + 8).isSubset(of: black(image, in: 0..<60, below)),
            "the first x label centred under its tick")
        XCTAssertTrue(
            glyphPixels("6400", x: 40 + 74 - 15, y: 12 + 58 + 8).isSubset(of: black(image, in: 60..<140, below)),
            "the middle one")
    }

    func testPixelFont() {
        let digits = (0...9).map { glyphPixels(String($0), x: 0, y: 0) }
        XCTAssertEqual(Set(digits).count, 10, "ten distinct digits")
        XCTAssertEqual(digits[8].count, 13 * 4, "an 8 lights 13 cells of 2x2 pixels")
        XCTAssertEqual(PixelFont.width("1000", scale: 2), 30)
        XCTAssertEqual(
            (-4...4).map(PixelFont.decade), ["1e-4", "1e-3", "0.01", "0.1", "1", "10", "100", "1000", "1e4"])
        XCTAssertEqual([6400, 0, -3, 0.5, 1e8].map(PixelFont.label), ["6400", "0", "-3", "0.5", "1e+08"])
        XCTAssertTrue([6400, 0.5, 1e8, -2.5e-7].map(PixelFont.label).allSatisfy(PixelFont.canDraw))
        XCTAssertFalse(PixelFont.canDraw("nan"))
    }

    func testNoSeriesGivesEmptyAxes() {
        let image = SeriesPlot.render([], width: 120, height: 80)
        XCTAssertEqual(image.pixels.count, 120 * 80 * 3)
        XCTAssertFalse(image.pixels.contains { $0 != 0 && $0 != 255 })
    }

    func testNiceTicksAreRoundAndInside() {
        XCTAssertEqual(SeriesPlot.niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1])
        XCTAssertEqual(SeriesPlot.niceTicks(1, 1000), [200, 400, 600, 800, 1000])
        XCTAssertEqual(SeriesPlot.niceTicks(0.031, 0.078), [0.04, 0.05, 0.06, 0.07])
        XCTAssertEqual(SeriesPlot.niceTicks(-3, 2), [-3, -2, -1, 0, 1, 2])
        XCTAssertEqual(SeriesPlot.niceTicks(1, 1), [])
        XCTAssertEqual(SeriesPlot.niceTicks(.nan, 1), [])
    }

    /// loss.png: a loss within one decade (no power of ten inside) still gets numbered y ticks, the
    /// steps get round x ticks, and a long series draws no markers.
    func testLossCurveHasNumberedAxes() {
        let points: [(step: Double, loss: Double)] = (1...500).map { i in
            let step = Double(i * 10)
            let loss: Double = 0.05 + 0.02 * exp(-Double(i) / 100)
            return (step, loss)
        }
        let image = LossCurve.render(points, width: 640, height: 320)
        // Axis at column 40; y ticks in columns 35 to 39 between rows 12 and 290.
        let ticks = (12...290).filter { pixel(image, 37, $0) == [0, 0, 0] }
        XCTAssertGreaterThanOrEqual(ticks.count, 3, "y ticks at rows \(ticks)")
        XCTAssertFalse(black(image, in: 0..<34, 12..<290).isEmpty, "y tick numbers left of the axis")
        XCTAssertFalse(black(image, in: 41..<640, 297..<320).isEmpty, "x tick numbers under the axis")
        let w = PixelFont.width("5000", scale: 2)
        XCTAssertTrue(
            glyphPixels("5000", x: 640 - w, y: 12 + 278 + 8).isSubset(of: black(image, in: 500..<640, 296..<320)),
            "the last step, 5000, labelled at the right end")
    }
}

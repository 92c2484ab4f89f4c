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
        let image = SeriesPlot.render([SeriesPlot.Series(points: [(0, 100), (10, 10), (20, 1)], color: blue),
                                       SeriesPlot.Series(points: [(0, 1), (20, 50)], color: red)],
                                      references: [10], width: 200, height: 100)
        XCTAssertEqual(image.channels, 3)
        XCTAssertEqual(image.pixels.count, 200 * 100 * 3)
        let rgb = { (c: SeriesPlot.Color) in [c.rgb.0, c.rgb.1, c.rgb.2] }
        // Plot area: x from 40 to 188, y from 12 (top) to 70 (bottom), log10 y over [0, 2] padded 4 %.
        func y(_ v: Double) -> Int {
            let lo = -0.08, hi = 2.08
            return 12 + 58 - Int(((log10(v) - lo) / (hi - lo) * 57).rounded())
        }
        XCTAssertEqual(pixel(image, 40 + 74, y(10)), rgb(blue), "the middle point of the falling series (log axis: halfway)")
        XCTAssertEqual(pixel(image, 188 - 1, y(50)), rgb(red), "the last point of the rising series")
        XCTAssertEqual(pixel(image, 40 + 2, y(100)), rgb(blue), "the first point of the falling series")
        XCTAssertTrue((45..<100).contains { pixel(image, $0, y(10)) == [150, 150, 150] }, "the grey reference line at 10")
        XCTAssertEqual(pixel(image, 5, 5), [255, 255, 255], "background outside the plot")
    }

    func testNoSeriesGivesEmptyAxes() {
        let image = SeriesPlot.render([], width: 120, height: 80)
        XCTAssertEqual(image.pixels.count, 120 * 80 * 3)
        XCTAssertFalse(image.pixels.contains { $0 != 0 && $0 != 255 })
    }
}

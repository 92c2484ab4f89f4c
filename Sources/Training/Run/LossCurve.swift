import Foundation
import TensorCore

/// A run's loss curve (`loss.png`): the logged loss against the training step, log10 y axis when
/// every value is positive, with numbered ticks on both axes (`SeriesPlot`).
public enum LossCurve {
    /// `points`: (step, loss) as logged.
    public static func render(_ points: [(step: Double, loss: Double)], width: Int = 640, height: Int = 320)
        -> PNG.Image
    {
        let finite = points.filter { $0.step.isFinite && $0.loss.isFinite }
        let steps = finite.map(\.step)
        return SeriesPlot.render(
            [.init(points: finite.map { (x: $0.step, y: $0.loss) }, color: SeriesPlot.palette[0])],
            xTicks: SeriesPlot.niceTicks(steps.min() ?? 0, steps.max() ?? 0), markers: false, width: width,
            height: height)
    }

    /// The (step, `key`) pairs of a run's log lines that have both.
    public static func points(_ log: [[String: Any]], key: String) -> [(step: Double, loss: Double)] {
        log.compactMap { line in
            guard let v = line[key] as? Double,
                let s = (line["step"] as? Int) ?? (line["step"] as? Double).map(Int.init)
            else { return nil }
            return (Double(s), v)
        }
    }
}

import ArgumentParser
import Diffusion
import Foundation
import Training

/// A trainer that `--set-after` runs in phases (`train teacher` and `distill`).
protocol PhasedTraining: AnyObject {
    associatedtype Config: RunConfig
    init(config: Config, runPath: String, resume: Bool) throws
    var config: Config { get }
    var run: RunFolder { get }
    var step: Int { get }
    var imagesSeen: Int { get }
    func train(stopAfterSteps: Int?, stop: StopSignal?) throws
}

extension PhasedTraining {
    /// The run's scheduled settings still to come.
    var schedule: [ScheduledSettings] { config.setAfter ?? [] }
}

extension TeacherTrainer: PhasedTraining {}
extension OneStepTrainer: PhasedTraining {}

/// `--set-after IMAGES:key=value`: a run trains to the step that reaches each scheduled point,
/// saves its state there, and re-opens itself from it as `--resume --set key=value` would, so the
/// result equals a stop and a resume, bit for bit.
enum Phases {
    /// `--set-after`'s help, for both training commands.
    static let help = """
        Change a setting by itself part-way: after the step that reaches IMAGES, as a stop there and \
        --resume --set would (IMAGES:key=value, e.g. 128000:p_mean=0; repeat; kept in config.json, so an \
        interrupted run keeps it; a point already passed applies at once).
        """

    /// A new run's `--set-after` words as its schedule (nil for none), each checked against
    /// `config` as the run will apply it, so a bad one fails before anything trains.
    static func schedule<Config: RunConfig>(_ words: [String], for config: Config) throws -> [ScheduledSettings]? {
        guard !words.isEmpty else { return nil }
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any] ?? [:]
        return try ResumedConfig<Config>.parseScheduled(words, json: json)
    }

    /// Opens the run (new with `config`, or the resumed one: `resumed`), prints `announce`'s line
    /// about it, then trains to its end or until `stop`, phase by phase; returns the last phase's
    /// trainer. A point reached at the resume does not override what the resume's own `--set`
    /// changed. `flags` names the command's flags in errors.
    static func train<T: PhasedTraining>(
        config: T.Config, out: String, resumed: ResumedConfig<T.Config>?, flags: [String: String], stop: StopSignal,
        announce: (T) -> String
    ) throws -> T {
        var current: T? = try ConfigFlags.naming(resumed?.flags(flags) ?? flags) {
            try T(config: config, runPath: out, resume: resumed != nil)
        }
        print(announce(current!))
        resumed?.record(in: current!.run, imagesSeen: current!.imagesSeen)
        let end = current!.config.totalSteps * current!.config.batchSize
        for entry in current!.schedule where entry.images > end {
            print(
                "--set-after \(entry.images): past the run's end (\(end) images); it applies if --images extends the run"
            )
        }
        var keeping = resumed?.changedKeys ?? []
        while true {
            let seen = current!.imagesSeen
            if current!.schedule.contains(where: { $0.images <= seen }) {
                let phase = try ResumedConfig<T.Config>(out: out, dueAt: seen, keeping: keeping)
                current = nil  // its state is saved: free it before the next phase opens
                let next = try ConfigFlags.naming(phase.flags(flags)) {
                    try T(config: phase.config, runPath: out, resume: true)
                }
                phase.record(in: next.run, imagesSeen: next.imagesSeen)
                current = next
            }
            keeping = []
            let trainer = current!
            let next = trainer.schedule.map(\.images).min()
            let B = trainer.config.batchSize, total = trainer.config.totalSteps
            let steps = next.map { point in
                let images = point - trainer.imagesSeen  // positive: the points reached were applied
                return min(images / B + (images % B == 0 ? 0 : 1), max(0, total - trainer.step))
            }
            try trainer.train(stopAfterSteps: steps, stop: stop)
            if stop.isSet || next == nil || trainer.step >= total { return trainer }
        }
    }
}

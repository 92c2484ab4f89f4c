import ArgumentParser
import Diffusion
import Foundation
import Training

/// A trainer that `--set-after` runs in phases (`train teacher` and `distill`).
protocol PhasedTraining: AnyObject {
    associatedtype Config: Codable
    init(config: Config, runPath: String, resume: Bool) throws
    var run: RunFolder { get }
    var step: Int { get }
    var imagesSeen: Int { get }
    /// The run's scheduled settings still to come.
    var schedule: [ScheduledSettings] { get }
    var batchSize: Int { get }
    var totalSteps: Int { get }
    func train(stopAfterSteps: Int?, stop: StopSignal?) throws
}

extension TeacherTrainer: PhasedTraining {
    var schedule: [ScheduledSettings] { config.setAfter ?? [] }
    var batchSize: Int { config.batchSize }
    var totalSteps: Int { config.totalSteps }
}

extension OneStepTrainer: PhasedTraining {
    var schedule: [ScheduledSettings] { config.setAfter ?? [] }
    var batchSize: Int { config.batchSize }
    var totalSteps: Int { config.totalSteps }
}

/// `--set-after IMAGES:key=value`: a run trains to each scheduled point, then re-opens itself from
/// its saved state as `--resume --set key=value` there would, so the result equals a stop and a
/// resume, bit for bit.
enum Phases {
    /// A new run's `--set-after` words as its schedule (nil for none), each checked against
    /// `config` as `--set` would check it, so a bad one fails before training starts.
    static func schedule<Config: Codable>(_ words: [String], for config: Config) throws -> [ScheduledSettings]? {
        guard !words.isEmpty else { return nil }
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any] ?? [:]
        return try ResumedConfig<Config>.parseScheduled(words, json: json)
    }

    /// Trains to the end of the run (or until `stop`), phase by phase; returns the last phase's
    /// trainer. `flags` names the command's flags in errors.
    static func train<T: PhasedTraining>(_ first: T, out: String, flags: [String: String], stop: StopSignal) throws
        -> T
    {
        var trainer = first
        while true {
            if trainer.schedule.contains(where: { $0.images <= trainer.imagesSeen }) {
                let phase = try ResumedConfig<T.Config>(out: out, settings: [], dueAt: trainer.imagesSeen)
                trainer = try ConfigFlags.naming(phase.flags(flags)) {
                    try T(config: phase.config, runPath: out, resume: true)
                }
                phase.record(in: trainer.run, imagesSeen: trainer.imagesSeen)
            }
            let next = trainer.schedule.map(\.images).min()
            let B = trainer.batchSize, seen = trainer.imagesSeen
            try trainer.train(stopAfterSteps: next.map { ($0 - seen + B - 1) / B }, stop: stop)
            if stop.isSet || next == nil || trainer.step >= trainer.totalSteps { return trainer }
        }
    }
}

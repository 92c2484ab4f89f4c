import ArgumentParser
import Foundation
import TensorCore
import Training

/// `onestep train evaluator --data mnist`: trains the LeNet-5 behind FD_LeNet and writes it to
/// models/evaluator/<data>-lenet.safetensors with its seed and test accuracy.
struct TrainEvaluator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluator",
        abstract: "Train the LeNet-5 feature network used by FD_LeNet, KID and precision/recall.")

    @Option(help: "Data set: mnist or fashion.") var data = "mnist"
    @Option(help: "Folder holding the data sets.") var dataDir = "data"
    @Option(help: "Epochs (default: the committed recipe of the data set).") var epochs: Int?
    @Option(help: "Batch size.") var batch: Int?
    @Option(help: "Peak learning rate (cosine decay).") var lr: Float?
    @Option(help: "Seed (initialisation, batch order, augmentation).") var seed: UInt64?
    @Option(help: "Random shifts of up to this many pixels.") var maxShift: Int?
    @Option(help: "Random horizontal flips (Fashion-MNIST): true or false.") var flip: Bool?
    @Option(help: "Threads (BLAS and kernels).") var threads = 2
    @Option(help: "Output checkpoint (default models/evaluator/<data>-lenet.safetensors).") var out: String?

    func run() async throws {
        useCompute(threads: threads)
        let train = try ImageDataset.load(name: data, split: .train, dataDir: dataDir)
        let test = try ImageDataset.load(name: data, split: .test, dataDir: dataDir)
        var cfg = EvaluatorTrainingConfig.committed(dataset: data)
        if let epochs { cfg.epochs = epochs }
        if let batch { cfg.batchSize = batch }
        if let lr { cfg.learningRate = lr }
        if let seed { cfg.seed = seed }
        if let maxShift { cfg.maxShift = maxShift }
        if let flip { cfg.horizontalFlip = flip }
        let (net, result) = try EvaluatorTraining.train(train: train, test: test, config: cfg) { line in
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
        let path = out ?? LeNetEvaluator.path(dataset: data)
        try EvaluatorTraining.save(net, result: result, to: path)
        print(
            String(
                format: "test accuracy %.4f after %d epochs (%.0f s) -> %@", result.testAccuracy, cfg.epochs,
                result.seconds, path))
    }
}

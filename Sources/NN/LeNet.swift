import Foundation
import TensorCore

/// Configuration of the LeNet-5 evaluator. JSON keys are snake_case (checkpoint metadata `config`).
/// Only 28x28 inputs are supported (MNIST, Fashion-MNIST).
public struct LeNetConfig: Codable, Sendable, Equatable {
    public var inChannels = 1
    public var resolution = 28
    public var classes = 10

    public init(inChannels: Int = 1, classes: Int = 10) {
        self.inChannels = inChannels
        self.classes = classes
    }

    enum CodingKeys: String, CodingKey {
        case inChannels = "in_channels", resolution, classes
    }

    public func validate() throws {
        guard resolution == 28 else {
            throw NNError(.invalidConfig, "lenet config: resolution must be 28 (got \(resolution))")
        }
        guard ArchitectureLimits.imageChannels.contains(inChannels),
            (2...ArchitectureLimits.classes.upperBound).contains(classes)
        else {
            throw NNError(
                .invalidConfig,
                "lenet config: in_channels must be in \(ArchitectureLimits.imageChannels) and classes in 2...\(ArchitectureLimits.classes.upperBound)"
            )
        }
    }
}

/// LeNet-5 (ReLU, average pooling), the network whose penultimate features define FD_LeNet:
///
///     x [B, C, 28, 28] in [-1, 1]
///     conv1 5x5 C->6, pad 2 -> ReLU -> avgpool 2   [6, 14, 14]
///     conv2 5x5 6->16       -> ReLU -> avgpool 2   [16, 5, 5]
///     flatten (PyTorch order c*25 + h*5 + w)        [400]
///     fc1 400->120 -> ReLU -> fc2 120->84 -> ReLU   [84]  = features
///     fc3 84->classes                               logits
///
/// Parameter names (PyTorch `nn.Module` attribute names): `conv1.weight/bias`, `conv2.*`, `fc1.*`,
/// `fc2.*`, `fc3.*`. Activations are CBHW internally; inputs and outputs are batch-major.
/// Not thread-safe: one forward/backward at a time per instance.
public final class LeNet: ParameterOwner, @unchecked Sendable {
    public static let architecture = "lenet"
    /// Width of the penultimate feature vector.
    public static let featureDim = 84

    public let config: LeNetConfig
    public let parameters = ParameterStore()
    let scratch = Buffer()
    let conv1: Conv2d, conv2: Conv2d
    let fc1: Linear, fc2: Linear, fc3: Linear
    private let relu1 = ReLULayer(), relu2 = ReLULayer(), relu3 = ReLULayer(), relu4 = ReLULayer()
    private let pool1 = AvgPool2x2Layer(), pool2 = AvgPool2x2Layer()
    private let xin = Buffer(), flat = Buffer(), dFlatC = Buffer(), dInput = Buffer()
    private var batch = 0

    public init(_ config: LeNetConfig = LeNetConfig(), seed: UInt64 = 0) throws {
        try config.validate()
        self.config = config
        let s = parameters
        conv1 = Conv2d(
            s, "conv1", inChannels: config.inChannels, outChannels: 6, kernel: 5, padding: 2, scratch: scratch)
        conv2 = Conv2d(s, "conv2", inChannels: 6, outChannels: 16, kernel: 5, scratch: scratch)
        fc1 = Linear(s, "fc1", inFeatures: 400, outFeatures: 120)
        fc2 = Linear(s, "fc2", inFeatures: 120, outFeatures: 84)
        fc3 = Linear(s, "fc3", inFeatures: 84, outFeatures: config.classes)
        parameters.initialise(seed: seed)
    }

    public var classes: Int { config.classes }
    public var inputCount: Int { config.inChannels * 28 * 28 }
    public var configJSON: String { jsonString(config) }

    /// Runs the network to the 84-d features; returns a pointer to them, [B, 84] (valid until the
    /// next forward). `x` [B, C, 28, 28] must stay valid until `backward`.
    @discardableResult
    public func features(_ x: UnsafePointer<Float>, batch: Int) -> UnsafeMutablePointer<Float> {
        self.batch = batch
        let B = batch, C = config.inChannels
        // Own copy in CBHW (a plain copy when C == 1): backward must not depend on the caller's buffer.
        xin.resize(C * B * 784)
        Layout.nchwToCBHW(x, xin.ptr, batch: B, channels: C, hw: 784)
        let input = UnsafePointer(xin.ptr)
        var h = conv1.forward(input, batch: B, height: 28, width: 28)
        h = relu1.forward(h, count: 6 * B * 784)
        h = pool1.forward(h, planes: 6 * B, height: 28, width: 28)
        h = conv2.forward(h, batch: B, height: 14, width: 14)
        h = relu2.forward(h, count: 16 * B * 100)
        h = pool2.forward(h, planes: 16 * B, height: 10, width: 10)
        flat.resize(B * 400)
        Layout.cbhwToNCHW(h, flat.ptr, batch: B, channels: 16, hw: 25)
        h = fc1.forward(flat.ptr, batch: B)
        h = relu3.forward(h, count: B * 120)
        h = fc2.forward(h, batch: B)
        return relu4.forward(h, count: B * 84)
    }

    /// Logits [B, classes] (valid until the next forward); the features stay readable through
    /// `lastFeatures`.
    @discardableResult
    public func forward(_ x: UnsafePointer<Float>, batch: Int) -> UnsafeMutablePointer<Float> {
        let f = features(x, batch: batch)
        return fc3.forward(f, batch: batch)
    }

    /// The features of the last forward, [B, 84].
    public var lastFeatures: UnsafeMutablePointer<Float> { relu4.out.ptr }

    /// Backward from dL/dlogits [B, classes] (after `forward`): accumulates parameter gradients and
    /// returns dL/dx [B, C, 28, 28]. With `needInput` false the input gradient is not computed
    /// (the returned pointer is then unspecified).
    @discardableResult
    public func backward(_ dLogits: UnsafePointer<Float>, needInput: Bool = true) -> UnsafeMutablePointer<Float> {
        let B = batch, C = config.inChannels
        var d = fc3.backward(dLogits)
        d = relu4.backward(d)
        d = fc2.backward(d)
        d = relu3.backward(d)
        d = fc1.backward(d)
        dFlatC.resize(B * 400)
        Layout.nchwToCBHW(d, dFlatC.ptr, batch: B, channels: 16, hw: 25)
        d = pool2.backward(dFlatC.ptr)
        d = relu2.backward(d)
        d = conv2.backward(d)
        d = pool1.backward(d)
        d = relu1.backward(d)
        d = conv1.backward(d, needInput: needInput)
        if C == 1 || !needInput { return d }
        dInput.resize(B * C * 784)
        Layout.cbhwToNCHW(d, dInput.ptr, batch: B, channels: C, hw: 784)
        return dInput.ptr
    }

    // MARK: Checkpoints

    /// Metadata: `format` (onestep-1), `arch` (lenet), `config` (JSON).
    public var metadata: [String: String] {
        ["format": NetworkCheckpoint.format, "arch": Self.architecture, "config": configJSON]
    }

    /// Writes parameters and metadata (merged with `extra`) atomically as safetensors.
    public func save(to path: String, extra: [String: String] = [:]) throws {
        let meta = metadata.merging(extra) { _, new in new }
        try SafetensorsFile.write(tensors: parameters.namedTensors(), metadata: meta, to: path)
    }

    /// Reads a LeNet checkpoint (validated as untrusted); throws `NNError(.checkpoint)` if it is
    /// not one.
    public static func load(path: String) throws -> (LeNet, SafetensorsFile) {
        let file = try SafetensorsFile.read(path: path)
        let meta = file.metadata
        guard meta["format"] == NetworkCheckpoint.format else {
            throw NNError(
                .checkpoint,
                "\(path): metadata 'format' is \(meta["format"].map { "'\($0)'" } ?? "missing"), expected '\(NetworkCheckpoint.format)'"
            )
        }
        guard meta["arch"] == architecture else {
            throw NNError(
                .checkpoint, "\(path): architecture is \(meta["arch"].map { "'\($0)'" } ?? "missing"), expected 'lenet'"
            )
        }
        let config: LeNetConfig
        do {
            config = try JSONDecoder().decode(LeNetConfig.self, from: Data((meta["config"] ?? "{}").utf8))
        } catch {
            throw NNError(.checkpoint, "\(path): 'config' is not a valid lenet config", cause: "\(error)")
        }
        try NetworkCheckpoint.checkPlanned(shapes: file.shapes) { try LeNet(config) }
        let net = try LeNet(config)
        try net.parameters.load { file.tensors[$0] }
        return (net, file)
    }
}

/// Softmax cross-entropy over rows of logits.
public enum CrossEntropy {
    /// Mean over the batch of -log softmax(logits)[label]; writes dL/dlogits = (softmax - onehot) / B
    /// into `dLogits` (may be nil). Computed with the max subtracted, in Double per row.
    public static func loss(
        logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int, classes: Int,
        dLogits: UnsafeMutablePointer<Float>?
    ) -> Float {
        var total = 0.0
        let invB = 1 / Double(batch)
        for b in 0..<batch {
            let row = logits + b * classes
            var m = row[0]
            for j in 1..<classes { m = max(m, row[j]) }
            var s = 0.0
            for j in 0..<classes { s += exp(Double(row[j] - m)) }
            let label = Int(labels[b])
            precondition(label >= 0 && label < classes, "label \(label) out of range 0..<\(classes)")
            let logZ = log(s) + Double(m)
            total += logZ - Double(row[label])
            if let dLogits {
                let g = dLogits + b * classes
                for j in 0..<classes {
                    let p = exp(Double(row[j]) - logZ)
                    g[j] = Float((p - (j == label ? 1 : 0)) * invB)
                }
            }
        }
        return Float(total * invB)
    }
}

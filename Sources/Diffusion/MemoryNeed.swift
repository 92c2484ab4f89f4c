import Foundation

/// What a model's networks hold in memory, from their architecture alone: parameter bytes (values,
/// gradients, and the packed copy frozen weights keep for the convolution engine) and an upper
/// bound on activation bytes per sample of a network call (`activationFloatsPerSample`). Loaders
/// weigh it against a limit before a network from an untrusted file runs: a small checkpoint can
/// declare a network whose activations need far more memory than its file holds.
public struct MemoryNeed: Sendable, Equatable {
    public var parameterBytes: Int
    public var activationBytesPerSample: Int

    public init(parameterBytes: Int = 0, activationBytesPerSample: Int = 0) {
        self.parameterBytes = parameterBytes
        self.activationBytesPerSample = activationBytesPerSample
    }

    /// The bytes `instances` replicas hold while each runs a network call of `batch` samples
    /// (saturating: never traps on a hostile size).
    public func bytes(batch: Int, instances: Int = 1) -> Int {
        let (a, o1) = activationBytesPerSample.multipliedReportingOverflow(by: max(1, batch))
        let (one, o2) = a.addingReportingOverflow(parameterBytes)
        let (all, o3) = one.multipliedReportingOverflow(by: max(1, instances))
        return o1 || o2 || o3 ? Int.max : all
    }

    /// Nil when those bytes fit in `limit`; else what they come to, in words for an error message.
    public func excess(batch: Int, instances: Int = 1, limit: Int) -> String? {
        let need = bytes(batch: batch, instances: instances)
        guard need > limit else { return nil }
        let mib = Self.mebibytes
        return
            "about \(mib(need)) (\(instances) instance(s): parameters \(mib(parameterBytes)), activations \(mib(activationBytesPerSample)) per sample x a batch of \(batch))"
    }

    /// "123 MiB" (a saturated bound: "more than 8 EiB").
    public static func mebibytes(_ bytes: Int) -> String {
        bytes == Int.max ? "more than 8 EiB" : String(format: "%.0f MiB", Double(bytes) / 1_048_576)
    }

    /// This machine's memory.
    public static var physical: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory) }
}

import Foundation
import GRPCCore
import SamplerAPI

/// Triton's configuration and statistics extensions, read by tritonclient (`get_model_config`,
/// `get_inference_statistics`), perf_analyzer and Model Analyzer.
extension InferenceService {
    /// The model version's configuration in Triton's terms: `max_batch_size` is the batcher's
    /// (samples per batch; inputs are then per-sample scalars, so a request's `seed` is [N] with N
    /// the batch dimension), dynamic batching with the preferred sizes and queue delay, one CPU
    /// instance group with the engine instances, the version policy.
    public func modelConfig(
        request: ServerRequest<Inference_ModelConfigRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelConfigResponse> {
        try await mapErrors { ServerResponse(message: try await config(request.message)) }
    }

    /// ModelConfig (also `GET /v2/models/{m}/config`).
    func config(_ m: Inference_ModelConfigRequest) async throws -> Inference_ModelConfigResponse {
        let lane = try await frontend.lane(
            model: m.name, version: try InferRequestChecks.version(m.version), label: nil)
        let runtime = await frontend.repository.runtime(of: lane)
        let d = lane.model.description
        return .with {
            $0.config = .with {
                $0.name = m.name
                $0.platform = "onestep_\(d.kind.name)"
                $0.backend = "onestep"
                $0.maxBatchSize = Int32(clamping: runtime.batcher.maxBatchSize)
                $0.versionPolicy = .with {
                    switch runtime.policy {
                    case .latest(let n): $0.latest = .with { $0.numVersions = UInt32(clamping: n) }
                    case .all: $0.all = .init()
                    case .specific(let vs): $0.specific = .with { $0.versions = vs }
                    }
                }
                $0.input = [
                    .with {
                        $0.name = "seed"; $0.dataType = .typeInt64
                    }
                ]
                if d.numClasses > 0 {
                    $0.input.append(
                        .with {
                            $0.name = "label"; $0.dataType = .typeInt64
                        })
                }
                $0.output = [
                    .with {
                        $0.name = "sample"; $0.dataType = .typeFp32; $0.dims = d.sampleShape.map(Int64.init)
                    },
                    .with {
                        $0.name = "seed"; $0.dataType = .typeInt64
                    },
                ]
                $0.dynamicBatching = .with {
                    $0.preferredBatchSize = runtime.batcher.preferredBatchSizes.map { Int32(clamping: $0) }
                    $0.maxQueueDelayMicroseconds = UInt64(max(0, runtime.batcher.maxQueueDelay.microseconds))
                    $0.priorityLevels = 3
                    $0.defaultPriorityLevel = 2
                }
                $0.instanceGroup = [
                    .with {
                        $0.name = "\(m.name)_cpu"; $0.kind = .cpu; $0.count = Int32(lane.model.instances)
                    }
                ]
            }
        }
    }

    /// Per ready version (of one model, or of all when the name is empty): samples computed, batches
    /// run, requests by outcome with their durations, queue and compute time, and per batch size the
    /// batches and their compute time, since the version was loaded.
    public func modelStatistics(
        request: ServerRequest<Inference_ModelStatisticsRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelStatisticsResponse> {
        try await mapErrors {
            let m = request.message
            let lanes = try await frontend.repository.readyLanes(
                model: m.name.isEmpty ? nil : m.name, version: try InferRequestChecks.version(m.version))
            var out: [Inference_ModelStatistics] = []
            for lane in lanes {
                let s = await lane.statistics
                out.append(
                    .with {
                        $0.name = lane.model.name
                        $0.version = "\(lane.model.version)"
                        $0.lastInference = s.lastInferenceMs
                        $0.inferenceCount = s.inferenceCount
                        $0.executionCount = s.executionCount
                        $0.inferenceStats = .with {
                            $0.success = Self.duration(s.success)
                            $0.fail = Self.duration(s.fail)
                            $0.queue = Self.duration(s.queue)
                            $0.computeInfer = Self.duration(s.computeInfer)
                        }
                        $0.batchStats = s.batches.keys.sorted().map { size in
                            .with {
                                $0.batchSize = UInt64(size)
                                $0.computeInfer = Self.duration(s.batches[size]!)
                            }
                        }
                    })
            }
            return ServerResponse(message: .with { $0.modelStats = out })
        }
    }

    static func duration(_ t: LaneStatistics.Tally) -> Inference_StatisticDuration {
        .with {
            $0.count = t.count
            $0.ns = t.ns
        }
    }

    /// Triton's log settings (tritonclient `get_log_settings` / `update_log_settings`): an empty
    /// request reads them; settings given are changed at once for the whole daemon (all or none).
    public func logSettings(
        request: ServerRequest<Inference_LogSettingsRequest>,
        context: ServerContext
    ) async throws -> ServerResponse<Inference_LogSettingsResponse> {
        try await mapErrors {
            var changes: [String: LogControl.Value] = [:]
            for (key, value) in request.message.settings {
                guard let v = LogControl.Value(value) else {
                    throw ServerError(.invalidArgument, "log setting '\(key)' has no value")
                }
                changes[key] = v
            }
            let now = try LogControl.shared.apply(changes)
            return ServerResponse(message: .with { $0.settings = now.mapValues(\.response) })
        }
    }
}

/// The `# HELP` text of every metric the daemon exports (SERVING.md, "Metrics"). swift-metrics has
/// no help text and the Prometheus registry refuses a second registration with another text, so the
/// lines are added to the exposition at each scrape, before each family's `# TYPE` line. A metric
/// missing here is a test failure (`MetricsTests`).
enum MetricHelp {
    static let text: [String: String] = [
        "onestep_request_success_total": "Requests that reached a model version's queue and completed.",
        "onestep_request_failure_total": "Requests that reached a model version's queue and failed, by reason.",
        "onestep_samples_total": "Samples computed.",
        "onestep_batches_total": "Batches run (samples_total / batches_total is the mean batch size).",
        "onestep_batch_failure_total": "Batches the engine failed on.",
        "onestep_pending_requests": "Requests queued or running.",
        "onestep_pending_samples": "Samples queued and not yet in a batch.",
        "onestep_queue_duration_seconds": "Time from a request's submission to the start of its batch.",
        "onestep_compute_duration_seconds": "Compute time of a batch.",
        "onestep_batch_size": "Samples per batch run.",
        "onestep_loaded_model_versions": "Model versions ready to serve.",
        "onestep_memory_budget_used_bytes": "Request memory reserved now.",
        "onestep_memory_budget_limit_bytes": "The request memory budget.",
        "onestep_grpc_requests_total": "gRPC calls by method and final status code.",
        "onestep_grpc_request_duration_seconds": "End-to-end gRPC call time by method.",
        "onestep_http_requests_total": "HTTP requests by route template, method and status code.",
        "onestep_http_request_duration_seconds": "HTTP request handling time by route template.",
        "onestep_grpc_streams_closed_early_total":
            "RPCs cancelled because their HTTP/2 stream closed before the transport attached their cancellation.",
        "process_resident_memory_bytes": "Resident memory size in bytes.",
        "process_virtual_memory_bytes": "Virtual memory size in bytes.",
        "process_cpu_seconds_total": "User and system CPU time spent in seconds.",
        "process_open_fds": "Number of open file descriptors.",
        "process_max_fds": "Maximum number of open file descriptors.",
        "process_threads": "Number of OS threads in the process.",
        "process_start_time_seconds": "Start time of the process since the Unix epoch in seconds.",
    ]

    /// The exposition with a `# HELP` line before every `# TYPE` line of a known metric that has none.
    static func annotate(_ exposition: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(exposition.count + 4096)
        var previous: Substring = ""
        for line in String(decoding: exposition, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        {
            if line.hasPrefix("# TYPE "), !previous.hasPrefix("# HELP ") {
                let name = line.dropFirst(7).prefix { $0 != " " }
                if let help = text[String(name)] { out += Array("# HELP \(name) \(help)\n".utf8) }
            }
            out += Array(line.utf8)
            out.append(UInt8(ascii: "\n"))
            previous = line
        }
        out.removeLast()  // the newline added after the last piece (the original's own ends the text)
        return out
    }
}

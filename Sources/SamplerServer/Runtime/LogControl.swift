import Logging
import SamplerAPI
import Synchronization

/// The daemon's log level, changeable while it runs: Triton's log settings extension (gRPC
/// `LogSettings`, HTTP `/v2/logging`) reads and sets it. `onestep serve` installs
/// `ControlledLogHandler`s, whose level is this one.
public final class LogControl: Sendable {
    public static let shared = LogControl()
    /// The level's index in `Logger.Level.allCases`: read at every log call, so an atomic, not a lock.
    private let state = Atomic<Int>(Logger.Level.allCases.firstIndex(of: .info)!)

    public init() {}

    public var level: Logger.Level {
        get { Logger.Level.allCases[state.load(ordering: .relaxed)] }
        set { state.store(Logger.Level.allCases.firstIndex(of: newValue)!, ordering: .relaxed) }
    }

    /// Triton's settings and their values now: `log_info`, `log_warning`, `log_error` (whether
    /// those levels are logged), `log_verbose_level` (0; 1 debug; 2 trace), `log_format` ("default":
    /// the format is `log_format` of the configuration, fixed at start), `log_file` ("": standard
    /// error).
    public enum Value: Sendable, Equatable, Encodable {
        case bool(Bool), uint(UInt32), string(String)

        /// As Triton's REST API writes a setting: the bare value.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .bool(let b): try c.encode(b)
            case .uint(let u): try c.encode(u)
            case .string(let s): try c.encode(s)
            }
        }
    }

    public func settings() -> [String: Value] {
        let l = level
        return [
            "log_info": .bool(l <= .info), "log_warning": .bool(l <= .warning), "log_error": .bool(l <= .error),
            "log_verbose_level": .uint(l == .trace ? 2 : l == .debug ? 1 : 0), "log_format": .string("default"),
            "log_file": .string(""),
        ]
    }

    /// Changes the settings given (all or none: a bad one changes nothing) and returns them all.
    @discardableResult
    public func apply(_ changes: [String: Value]) throws(ServerError) -> [String: Value] {
        let now = settings()
        guard case .bool(var info)? = now["log_info"], case .bool(var warning)? = now["log_warning"],
            case .bool(var error)? = now["log_error"], case .uint(var verbose)? = now["log_verbose_level"]
        else { return now }
        func bad(_ key: String, _ want: String) -> ServerError {
            ServerError(.invalidArgument, "log setting '\(key)' takes \(want)")
        }
        for (key, value) in changes.sorted(by: { $0.key < $1.key }) {
            switch (key, value) {
            case ("log_info", .bool(let b)): info = b
            case ("log_warning", .bool(let b)): warning = b
            case ("log_error", .bool(let b)): error = b
            case ("log_verbose_level", .uint(let v)): verbose = v
            case ("log_format", .string(let s)):
                guard s == "default" else {
                    throw ServerError(
                        .invalidArgument,
                        "log_format '\(s)': this daemon's format is fixed at start (`log_format`: json or text); only \"default\" is accepted"
                    )
                }
            case ("log_file", .string(let s)):
                guard s.isEmpty else {
                    throw ServerError(
                        .invalidArgument,
                        "log_file '\(s)': the daemon logs to standard error (files are the service manager's job)")
                }
            case ("log_info", _), ("log_warning", _), ("log_error", _): throw bad(key, "a boolean")
            case ("log_verbose_level", _): throw bad(key, "an unsigned integer (0 off, 1 debug, 2 trace)")
            case ("log_format", _), ("log_file", _): throw bad(key, "a string")
            default:
                throw ServerError(
                    .invalidArgument,
                    "unknown log setting '\(key)' (log_info, log_warning, log_error, log_verbose_level, log_format, log_file)"
                )
            }
        }
        level =
            verbose >= 2
            ? .trace : verbose == 1 ? .debug : info ? .info : warning ? .warning : error ? .error : .critical
        return settings()
    }
}

/// A log handler whose level is `LogControl`'s (or stricter, where a logger asked for a stricter
/// one of its own).
public struct ControlledLogHandler: LogHandler {
    var base: any LogHandler
    let control: LogControl
    /// Set by `logLevel = ...` on one logger: that logger never logs below it.
    var floor: Logger.Level = .trace

    public init(_ base: any LogHandler, control: LogControl = .shared) {
        self.base = base
        self.control = control
    }

    public var logLevel: Logger.Level {
        get { max(control.level, floor) }
        set { floor = newValue }
    }

    public var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) { base.log(event: event) }
}

extension LogControl.Value {
    init?(_ v: Inference_LogSettingsRequest.SettingValue) {
        switch v.parameterChoice {
        case .boolParam(let b)?: self = .bool(b)
        case .uint32Param(let u)?: self = .uint(u)
        case .stringParam(let s)?: self = .string(s)
        case nil: return nil
        }
    }

    var response: Inference_LogSettingsResponse.SettingValue {
        .with {
            switch self {
            case .bool(let b): $0.boolParam = b
            case .uint(let u): $0.uint32Param = u
            case .string(let s): $0.stringParam = s
            }
        }
    }
}

import ArgumentParser
import Diffusion
import Dispatch
import Foundation

/// SIGINT / SIGTERM during a long job: the first asks it to stop at its next safe point (a training
/// step boundary: the full state is saved and `--resume` continues bitwise); a second exits at once.
enum Interrupt {
    /// Keeps the signal sources alive for the life of the process.
    private final class Sources: @unchecked Sendable {
        var all: [any DispatchSourceSignal] = []
    }
    private static let sources = Sources()

    /// Installs the handlers and returns the signal the job checks. `job` names it in the messages.
    static func install(job: String) -> StopSignal {
        let stop = StopSignal()
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                if stop.isSet {
                    FileHandle.standardError.write(Data("\(job): second signal, exiting now\n".utf8))
                    // `_exit`, not `exit`: the job's threads are still computing, and `exit`'s atexit
                    // handlers and static destructors (OpenBLAS, oneDNN) would pull the libraries out
                    // from under them (a SIGSEGV instead of status 130).
                    fflush(nil)
                    _exit(130)
                }
                stop.set()
                FileHandle.standardError.write(
                    Data(
                        "\n\(job): stopping after the current step and saving the state (signal again to quit at once)\n"
                            .utf8))
            }
            source.resume()
            sources.all.append(source)
        }
        return stop
    }

    /// After a job returned early (`interrupted`: a signal stopped it before its end): says how to
    /// go on and exits with status 130, as an interrupted command does.
    static func report(interrupted: Bool, job: String, resume: String) throws {
        guard interrupted else { return }
        FileHandle.standardError.write(Data("\(job): interrupted; state saved. Continue with: \(resume)\n".utf8))
        throw ExitCode(130)
    }
}

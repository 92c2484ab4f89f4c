import Foundation

/// Runs a command to completion (output and errors together) from `directory` (default: the
/// package root, so relative paths such as models/... resolve); returns its exit status and output.
public func runCommand(_ bin: String, _ args: [String], in directory: String? = nil) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: bin)
    p.arguments = args
    p.currentDirectoryURL = URL(fileURLWithPath: directory ?? packageRoot)
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    return (p.terminationStatus, text)
}

/// The package's root folder (this file is Tests/ServingTestSupport/CommandRun.swift).
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

import Foundation

/// The package's root folder (this file is Tests/TestSupport/PackageRoot.swift), where tests find
/// models/, tools/, clients/ and the venvs.
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

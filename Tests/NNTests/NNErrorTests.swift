import XCTest

@testable import NN

final class NNErrorTests: XCTestCase {
    func testDescriptionNamesCodeAndCause() {
        let e = NNError(.missingParameter, "no tensor enc.conv_in.weight", cause: "file x")
        XCTAssertEqual(e.description, "missingParameter: no tensor enc.conv_in.weight (file x)")
    }
}

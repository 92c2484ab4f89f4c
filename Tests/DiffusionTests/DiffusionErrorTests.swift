import XCTest

@testable import Diffusion

final class DiffusionErrorTests: XCTestCase {
    func testDescription() {
        XCTAssertEqual(DiffusionError(.snapshot, "bad").description, "snapshot: bad")
    }
}

import Foundation
import XCTest

@testable import CodesandLXD

/// The metadata.yaml of `codesand image build --lxd` (LXD reads architecture, creation_date, properties).
final class LXDImageMetadataTests: XCTestCase {
    func test_metadata_has_the_architecture_the_date_and_quoted_properties() {
        let yaml = LXDImage.metadataYAML(architecture: "x86_64", created: Date(timeIntervalSince1970: 1_700_000_000),
                                         properties: ["os": "debian", "description": "a \"b\"\\c\nd", "codesand.image_version": "1"])
        XCTAssertEqual(yaml, """
            architecture: "x86_64"
            creation_date: 1700000000
            properties:
              codesand.image_version: "1"
              description: "a \\"b\\"\\\\c\\nd"
              os: "debian"

            """)
    }

    func test_a_control_character_is_escaped() {
        XCTAssertEqual(LXDImage.quoted("a\u{1}b\tc"), "\"a\\u0001b\\u0009c\"")
    }

    func test_the_host_architecture_is_the_kernels() {
        XCTAssertFalse(LXDImage.hostArchitecture.isEmpty)
        XCTAssertFalse(LXDImage.hostArchitecture.contains("\0"))
    }
}

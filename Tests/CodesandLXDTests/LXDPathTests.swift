import XCTest

@testable import CodesandLXD

final class LXDPathTests: XCTestCase {
    func test_an_operation_query_stays_after_the_sub_resource() {
        XCTAssertEqual(LXDPath.sub("/1.0/operations/abc?project=p", "wait", query: "timeout=5"),
                       "/1.0/operations/abc/wait?project=p&timeout=5")
        XCTAssertEqual(LXDPath.sub("/1.0/operations/abc", "websocket", query: "secret=s"), "/1.0/operations/abc/websocket?secret=s")
        XCTAssertEqual(LXDPath.sub("/1.0/operations/abc/", "wait"), "/1.0/operations/abc/wait")
    }

    func test_the_project_is_added_once_and_not_for_the_default_one() {
        XCTAssertEqual(LXDPath.withProject("/1.0/instances", "default"), "/1.0/instances")
        XCTAssertEqual(LXDPath.withProject("/1.0/instances", "bots"), "/1.0/instances?project=bots")
        XCTAssertEqual(LXDPath.withProject("/1.0/instances/x/files?path=/a", "bots"), "/1.0/instances/x/files?path=/a&project=bots")
        XCTAssertEqual(LXDPath.withProject("/1.0/operations/a?project=q", "bots"), "/1.0/operations/a?project=q")
    }

    func test_names_and_file_paths_are_escaped() {
        XCTAssertEqual(LXDPath.instance("a b/../c"), "/1.0/instances/a%20b%2F..%2Fc")
        XCTAssertEqual(LXDPath.files("c-0", path: "/home/sandbox/x y&z"), "/1.0/instances/c-0/files?path=/home/sandbox/x%20y%26z")
    }

    func test_percent_decoding_of_instance_names() {
        XCTAssertEqual("cstest%2D1".percentDecoded, "cstest-1")
        XCTAssertEqual("plain".percentDecoded, "plain")
    }
}

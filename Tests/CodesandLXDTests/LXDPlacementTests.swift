import CodesandProtocol
import XCTest

@testable import CodesandLXD

/// Where a cluster's containers go, and what the instance list says about them (no LXD).
final class LXDPlacementTests: XCTestCase {
    func test_slots_go_round_robin_over_the_members_and_the_cluster_chooses_without_members() {
        let two = LXDPlacement(members: ["m1", "m2"])
        XCTAssertEqual((0..<5).map { two.target($0) }, ["m1", "m2", "m1", "m2", "m1"])
        XCTAssertEqual(two.createPath(1), "/1.0/instances?target=m2")
        XCTAssertEqual(LXDPlacement(members: ["a b"]).createPath(0), "/1.0/instances?target=a%20b")
        XCTAssertEqual(LXDPath.withProject(two.createPath(0), "bots"), "/1.0/instances?target=m1&project=bots")
        let own = LXDPlacement(members: [])
        XCTAssertNil(own.target(3))
        XCTAssertEqual(own.createPath(3), "/1.0/instances")
    }

    func test_an_adopted_container_on_another_member_than_its_slots_is_replaced() {
        let two = LXDPlacement(members: ["m1", "m2"])
        XCTAssertTrue(two.accepts("m2", slot: 1))
        XCTAssertFalse(two.accepts("m1", slot: 1), "slot 1 belongs on m2")
        XCTAssertFalse(two.accepts("m3", slot: 0), "a member no longer in the config")
        XCTAssertTrue(LXDPlacement(members: []).accepts("m7", slot: 4), "the cluster's own placement: wherever it is")
    }

    func test_the_instance_list_gives_the_pools_containers_status_and_member() throws {
        let list = try JSONParser.parse(Array("""
        [{"name":"cs-0","status":"Running","location":"m1"},{"name":"cs-1","status":"Error","location":"m2"},
         {"name":"other-0","status":"Running","location":"m1"},{"name":"cs-probe","status":"Stopped","location":"m2"},
         {"name":"cs","status":"Running","location":"m1"}]
        """.utf8))
        let seen = LXDInstanceSeen.parse(list, prefix: "cs")
        XCTAssertEqual(seen, ["cs-0": LXDInstanceSeen(status: "Running", location: "m1"),
                              "cs-1": LXDInstanceSeen(status: "Error", location: "m2"),
                              "cs-probe": LXDInstanceSeen(status: "Stopped", location: "m2")])
        XCTAssertFalse(seen["cs-0"]!.unreachable)
        XCTAssertTrue(seen["cs-1"]!.unreachable)
        XCTAssertEqual(LXDInstanceSeen.parse(.null, prefix: "cs"), [:])
    }

    func test_ready_slots_whose_container_stopped_or_vanished_are_lost_but_not_ones_ready_after_the_list() {
        let t0 = ContinuousClock.now
        let listed = t0 + .seconds(1)
        let seen = ["cs-0": LXDInstanceSeen(status: "Running", location: "m1"),
                    "cs-1": LXDInstanceSeen(status: "Error", location: "m2"),
                    "cs-2": LXDInstanceSeen(status: "Stopped", location: "m1"),
                    "cs-4": LXDInstanceSeen(status: "Error", location: "m2")]
        let ready: [Int: ContinuousClock.Instant] = [0: t0, 1: t0, 2: t0, 3: t0, 4: listed + .milliseconds(1)]
        let lost = LXDInstanceSeen.lost(seen, readySince: ready, listedAt: listed, name: { "cs-\($0)" })
        XCTAssertEqual(lost, [1, 2, 3], "0 runs; 3 is gone from the list; 4 became ready after the list was asked for")
    }
}

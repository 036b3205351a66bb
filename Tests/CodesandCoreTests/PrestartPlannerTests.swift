@testable import CodesandCore
import XCTest

/// Which interpreter each slot starts in advance: the recent requests' languages share the pool.
final class PrestartPlannerTests: XCTestCase {
    let specs = ["python3", "ruby", "php"].map { PrestartSpec(language: $0, argv: [$0], env: []) }

    func planner(size: Int, recent: [String]) -> PrestartPlanner {
        let p = PrestartPlanner(size: size)
        p.update(specs: specs)
        for language in recent { p.noteRequest(language: language) }
        return p
    }

    func assignment(_ p: PrestartPlanner, size: Int) -> [String?] {
        (0..<size).map { p.choose(for: $0)?.language }
    }

    func test_nothing_is_started_without_pre_startable_languages() {
        let p = PrestartPlanner(size: 2)
        p.noteRequest(language: "python3")
        XCTAssertNil(p.choose(for: 0))
        XCTAssertNil(p.language(of: 0))
    }

    func test_before_any_request_python3_waits_in_every_slot() {
        XCTAssertEqual(assignment(planner(size: 3, recent: []), size: 3), ["python3", "python3", "python3"])
    }

    func test_slots_follow_the_share_of_recent_requests() {
        let p = planner(size: 4, recent: ["python3", "ruby", "python3", "python3"])
        let chosen = assignment(p, size: 4)
        XCTAssertEqual(chosen.filter { $0 == "python3" }.count, 3, "\(chosen)")
        XCTAssertEqual(chosen.filter { $0 == "ruby" }.count, 1, "\(chosen)")
        XCTAssertEqual((0..<4).map { p.language(of: $0) }, chosen)
    }

    func test_requests_for_languages_without_a_pre_start_keep_slots_plain() {
        let p = planner(size: 4, recent: ["bash", "bash", "python3", "perl"])
        let chosen = assignment(p, size: 4)
        XCTAssertEqual(chosen.filter { $0 == nil }.count, 3, "three of four requests need a plain slot: \(chosen)")
        XCTAssertEqual(chosen.compactMap { $0 }, ["python3"])
    }

    func test_after_a_switch_the_new_languages_first_requests_take_most_of_the_pool() {
        let p = planner(size: 8, recent: Array(repeating: "ruby", count: PrestartPlanner.window) + Array(repeating: "php", count: 10))
        let chosen = assignment(p, size: 8)
        XCTAssertGreaterThanOrEqual(chosen.filter { $0 == "php" }.count, 6, "\(chosen)")
        XCTAssertGreaterThanOrEqual(chosen.filter { $0 == "ruby" }.count, 1, "the old language keeps a share: \(chosen)")
    }

    func test_only_the_latest_requests_count() {
        let p = planner(size: 2, recent: Array(repeating: "python3", count: 100) + Array(repeating: "php", count: PrestartPlanner.window))
        XCTAssertEqual(assignment(p, size: 2), ["php", "php"])
    }

    func test_a_slot_being_prepared_again_is_chosen_against_the_others_current_assignment() {
        let p = planner(size: 2, recent: ["python3", "ruby"])
        _ = assignment(p, size: 2)
        let kept = p.language(of: 1)
        // Slot 0 is used and prepared again: it gets what slot 1 does not hold.
        let again = p.choose(for: 0)?.language
        XCTAssertNotNil(again)
        XCTAssertNotEqual(again, kept)
    }

    func test_a_reload_that_drops_a_language_stops_starting_it() {
        let p = planner(size: 2, recent: ["ruby", "ruby"])
        XCTAssertEqual(p.choose(for: 0)?.language, "ruby")
        p.update(specs: specs.filter { $0.language != "ruby" })
        XCTAssertNil(p.choose(for: 0), "ruby's requests count as plain now")
    }
}

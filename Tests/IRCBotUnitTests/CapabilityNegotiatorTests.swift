@testable import CodesandIRCBot
import XCTest

/// CAP and SASL as the server sees them, line by line, without a server.
final class CapabilityNegotiatorTests: XCTestCase {
    func msg(_ line: String) -> IRCMessage { IRCMessage(parsing: line)! }
    func sent(_ steps: [CapabilityNegotiator.Step]?) -> [String] {
        (steps ?? []).compactMap { if case .send(let m) = $0 { return m.description } else { return nil } }
    }
    func ended(_ steps: [CapabilityNegotiator.Step]?) -> SessionEnd? {
        (steps ?? []).compactMap { if case .end(let e) = $0 { return e } else { return nil } }.first
    }

    func test_without_sasl_the_list_is_read_and_negotiation_ends() {
        var n = CapabilityNegotiator(sasl: nil)
        XCTAssertEqual(sent(n.start()), ["CAP LS :302"])
        XCTAssertEqual(sent(n.handle(msg(":irc.test CAP * LS :multi-prefix sasl=PLAIN"))), ["CAP :END"])
        XCTAssertTrue(n.isFinished)
        XCTAssertEqual(n.offered["sasl"], "PLAIN")
    }

    func test_plain_logs_in_with_account_and_password_in_base64() {
        var n = CapabilityNegotiator(sasl: SASLCredentials(mechanism: .plain, account: "bot", password: "secret"))
        // A list in two lines ("*" before the last parameter means more follows), with message tags.
        XCTAssertEqual(sent(n.handle(msg("@time=2026-01-01T00:00:00Z :irc.test CAP * LS * :multi-prefix"))), [])
        XCTAssertEqual(sent(n.handle(msg(":irc.test CAP * LS :sasl=EXTERNAL,PLAIN account-tag"))), ["CAP REQ :sasl"])
        XCTAssertEqual(sent(n.handle(msg(":irc.test CAP * ACK :sasl"))), ["AUTHENTICATE :PLAIN"])
        // base64("bot\0bot\0secret")
        XCTAssertEqual(sent(n.handle(msg("AUTHENTICATE +"))), ["AUTHENTICATE :Ym90AGJvdABzZWNyZXQ="])
        XCTAssertEqual(sent(n.handle(msg(":irc.test 900 * bot!b@h bot :You are now logged in as bot"))), [])
        XCTAssertEqual(sent(n.handle(msg(":irc.test 903 * :SASL authentication successful"))), ["CAP :END"])
        XCTAssertTrue(n.loggedIn)
    }

    func test_external_sends_an_empty_response() {
        var n = CapabilityNegotiator(sasl: SASLCredentials(mechanism: .external))
        _ = n.handle(msg(":irc.test CAP * LS :sasl"))  // no mechanism list (CAP 301 style): ask and see
        XCTAssertEqual(sent(n.handle(msg(":irc.test CAP * ACK :sasl"))), ["AUTHENTICATE :EXTERNAL"])
        XCTAssertEqual(sent(n.handle(msg("AUTHENTICATE +"))), ["AUTHENTICATE :+"])
    }

    func test_a_refused_login_is_fatal_and_names_the_account() {
        var n = CapabilityNegotiator(sasl: SASLCredentials(mechanism: .plain, account: "bot", password: "wrong"))
        _ = n.handle(msg(":irc.test CAP * LS :sasl=PLAIN"))
        _ = n.handle(msg(":irc.test CAP * ACK :sasl"))
        _ = n.handle(msg("AUTHENTICATE +"))
        let end = ended(n.handle(msg(":irc.test 904 * :SASL authentication failed")))
        XCTAssertEqual(end?.fatal, true)
        XCTAssertTrue(end?.reason.contains("SASL PLAIN authentication failed for account bot") == true, end?.reason ?? "nil")
    }

    func test_sasl_missing_from_the_list_is_worth_a_retry_but_a_missing_mechanism_is_not() {
        var away = CapabilityNegotiator(sasl: SASLCredentials(mechanism: .plain, account: "bot", password: "pw"))
        XCTAssertEqual(ended(away.handle(msg(":irc.test CAP * LS :multi-prefix")))?.fatal, false)
        var other = CapabilityNegotiator(sasl: SASLCredentials(mechanism: .external))
        XCTAssertEqual(ended(other.handle(msg(":irc.test CAP * LS :sasl=PLAIN")))?.fatal, true)
        var nak = CapabilityNegotiator(sasl: SASLCredentials(mechanism: .plain, account: "bot", password: "pw"))
        _ = nak.handle(msg(":irc.test CAP * LS :sasl=PLAIN"))
        XCTAssertEqual(ended(nak.handle(msg(":irc.test CAP * NAK :sasl")))?.fatal, true)
    }

    func test_a_long_response_is_sent_in_400_byte_lines_ending_with_plus_when_exact() {
        XCTAssertEqual(CapabilityNegotiator.chunks(String(repeating: "a", count: 400)), [String(repeating: "a", count: 400), "+"])
        XCTAssertEqual(CapabilityNegotiator.chunks(String(repeating: "a", count: 401)), [String(repeating: "a", count: 400), "a"])
        XCTAssertEqual(CapabilityNegotiator.chunks(""), ["+"])
    }

    func test_base64_matches_rfc_4648_vectors() {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors { XCTAssertEqual(base64(Array(plain.utf8)), encoded, plain) }
    }

    func test_other_messages_are_not_its_concern() {
        var n = CapabilityNegotiator(sasl: nil)
        XCTAssertNil(n.handle(msg(":irc.test 001 bot :Welcome")))
        XCTAssertNil(n.handle(msg("PING :x")))
    }
}

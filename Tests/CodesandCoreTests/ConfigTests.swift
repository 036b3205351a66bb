@testable import CodesandCore
import CodesandProtocol
import XCTest

final class ConfigTests: XCTestCase {
    func error(_ toml: String) -> String? {
        do {
            _ = try ConfigLoader.load(fileText: toml)
            return nil
        } catch {
            return "\(error)"
        }
    }

    func test_defaults_load_and_have_the_core_languages() throws {
        let c = try CodesandConfig.defaults()
        XCTAssertEqual(c.socketPath, "/run/codesand/codesand.sock")
        XCTAssertEqual(c.socketMode, 0o660)
        XCTAssertEqual(c.maxMessageBytes, 1 << 20)
        XCTAssertEqual(Set(c.languages.map(\.name)).isSuperset(of: ["python3", "bash", "sh"]), true)
    }

    func test_a_file_overrides_only_what_it_names() throws {
        let c = try ConfigLoader.load(fileText: "[pool]\nsize = 7\n[limits.default]\nwall_ms = 900\n")
        XCTAssertEqual(c.maxRunning, 7)
        XCTAssertEqual(c.poolSize, 7 + 4, "with the shipped spares")
        XCTAssertEqual(c.defaultLimits.wallMs, 900)
        XCTAssertEqual(c.defaultLimits.cpuMs, 5000)
    }

    /// pool.size runs at once, out of pool.size + pool.spare prepared slots; LXD has no spares.
    func test_the_pool_keeps_spares_beyond_what_runs_at_once() throws {
        let shipped = try ConfigLoader.load(fileText: "")
        XCTAssertEqual(shipped.maxRunning, 4)
        XCTAssertEqual(shipped.poolSize, 8)
        let three = try ConfigLoader.load(fileText: "[pool]\nsize = 3\nspare = 1\n")
        XCTAssertEqual([three.maxRunning, three.poolSize], [3, 4])
        let lxd = try ConfigLoader.load(fileText: "[sandbox]\nbackend = \"lxd\"\n[lxd]\nimage = \"x\"\n[pool]\nsize = 3\n")
        XCTAssertEqual([lxd.maxRunning, lxd.poolSize], [3, 3])
    }

    func test_a_wrong_type_names_the_key() {
        XCTAssertEqual(error("[pool]\nsize = \"many\"\n")?.contains("pool.size"), true)
    }

    func test_an_out_of_range_value_names_the_key() {
        let e = error("[limits.default]\nwall_ms = 99999999\n")
        XCTAssertEqual(e?.contains("limits.default.wall_ms"), true, e ?? "")
        XCTAssertEqual(error("[limits.max]\nwall_ms = 100\n")?.contains("limits.default.wall_ms"), true)
    }

    func test_an_unknown_key_is_rejected() {
        XCTAssertEqual(error("[pool]\nsise = 3\n")?.contains("pool.sise"), true)
    }

    func test_a_language_can_be_added_and_must_run_an_absolute_path() throws {
        let c = try ConfigLoader.load(fileText: "[languages.lua]\nfile = \"main.lua\"\nrun = [\"/usr/bin/lua\", \"{file}\"]\n")
        XCTAssertNotNil(c.languages.first { $0.name == "lua" })
        XCTAssertEqual(error("[languages.lua]\nfile = \"main.lua\"\nrun = [\"lua\"]\n")?.contains("languages.lua.run"), true)
        XCTAssertEqual(error("[languages.lua]\nfile = \"../x\"\nrun = [\"/usr/bin/lua\"]\n")?.contains("languages.lua.file"), true)
    }

    /// A launcher is a file name in sandbox.launcher_dir, and `{launcher}` and `launcher` come together.
    func test_a_launcher_is_a_file_name_that_prestart_uses() throws {
        let lang = "[languages.lua]\nfile = \"main.lua\"\nrun = [\"/usr/bin/lua\", \"{file}\"]\n"
        let c = try ConfigLoader.load(fileText: lang + "launcher = \"lua.lua\"\nprestart = [\"/usr/bin/lua\", \"-e\", \"{launcher}\"]\n")
        XCTAssertEqual(c.languages.first { $0.name == "lua" }?.launcher, "lua.lua")
        let e = error(lang + "launcher = \"../lua.lua\"\nprestart = [\"/usr/bin/lua\", \"-e\", \"{launcher}\"]\n")
        XCTAssertEqual(e?.contains("languages.lua.launcher"), true, e ?? "")
        XCTAssertEqual(error(lang + "launcher = \"lua.lua\"\nprestart = [\"/usr/bin/lua\"]\n")?.contains("languages.lua.launcher"), true)
        XCTAssertEqual(error(lang + "prestart = [\"/usr/bin/lua\", \"-e\", \"{launcher}\"]\n")?.contains("languages.lua.prestart"), true)
        // {launcher_stdin} (the text on a zygote's stdin, bash's): only with zygote = true.
        let onStdin = lang + "launcher = \"lua.lua\"\nprestart = [\"/usr/bin/lua\", \"{launcher_stdin}\"]\n"
        XCTAssertEqual(try ConfigLoader.load(fileText: onStdin + "zygote = true\n").languages.first { $0.name == "lua" }?.zygote, true)
        let notZygote = error(onStdin)
        XCTAssertEqual(notZygote?.contains("languages.lua.prestart") == true && notZygote?.contains("zygote = true") == true, true, notZygote ?? "")
        let noLauncher = error(lang + "prestart = [\"/usr/bin/lua\", \"{launcher_stdin}\"]\nzygote = true\n")
        XCTAssertEqual(noLauncher?.contains("languages.lua.prestart") == true && noLauncher?.contains("launcher = ") == true, true, noLauncher ?? "")
        XCTAssertEqual(error("[sandbox]\nlauncher_dir = \"launchers\"\n")?.contains("sandbox.launcher_dir"), true)
        XCTAssertEqual(try ConfigLoader.load(fileText: "[sandbox]\nlauncher_dir = \"/opt/l\"\n").sandbox.launcherDir, "/opt/l")
    }

    func test_bad_toml_reports_the_line() {
        XCTAssertEqual(error("[pool\n")?.contains("line 1"), true)
    }
}

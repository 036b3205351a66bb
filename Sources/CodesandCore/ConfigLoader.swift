import CodesandProtocol
import Foundation
import TOMLKit

/// A configuration problem, naming the key: "pool.size must be an integer, got a string".
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var key: String
    public var problem: String
    public var description: String { key.isEmpty ? problem : "\(key): \(problem)" }
}

/// Reads TOML config text laid over DefaultConfig.toml, checking every key's type and range.
public enum ConfigLoader {
    public static func load(path: String) throws -> CodesandConfig {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(key: "", problem: "cannot read config file \(path)")
        }
        return try load(fileText: text)
    }

    public static func load(fileText: String?) throws -> CodesandConfig {
        var tree = try parse(DefaultConfig.toml, origin: "built-in defaults")
        if let fileText {
            let user = try parse(fileText, origin: "config file")
            tree = try merge(tree, user, path: "")
        }
        let root = ConfigNode(value: tree, path: "")
        var config = try decode(root)
        try decodeBackend(root, into: &config.sandbox)
        return config
    }

    static func parse(_ text: String, origin: String) throws -> [String: JSONValue] {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigError(key: "", problem: "\(origin): TOML syntax error at line \(e.source.begin.line), column \(e.source.begin.column)")
        }
        // TOMLKit renders a table as JSON; JSONValue is the tree the checks below walk.
        let json = table.convert(to: .json)
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)), case .object(let o) = value else {
            throw ConfigError(key: "", problem: "\(origin): cannot be read as a table")
        }
        return o
    }

    /// Lays `top` over `base`. Tables merge key by key, except a language, which the file replaces whole.
    static func merge(_ base: [String: JSONValue], _ top: [String: JSONValue], path: String) throws -> [String: JSONValue] {
        var out = base
        for (key, value) in top {
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            guard let existing = base[key] else {
                if path == "languages" || path.hasPrefix("languages.") || path.hasPrefix("sandbox.") {
                    out[key] = value
                    continue
                }
                throw ConfigError(key: keyPath, problem: "unknown key")
            }
            if case .object(let b) = existing, case .object(let t) = value, path != "languages" {
                out[key] = .object(try merge(b, t, path: keyPath))
            } else {
                out[key] = value
            }
        }
        return out
    }

    static func decode(_ root: ConfigNode) throws -> CodesandConfig {
        let socket = try root.table("socket"), rpc = try root.table("rpc"), limits = try root.table("limits")
        let pool = try root.table("pool"), queue = try root.table("queue"), sb = try root.table("sandbox")
        let log = try root.table("log")
        let modeText = try socket.string("mode")
        guard let mode = UInt32(modeText, radix: 8), mode <= 0o777 else {
            throw ConfigError(key: "socket.mode", problem: "must be octal permission bits like \"0660\", got \"\(modeText)\"")
        }
        var maxRunning = Int(try pool.int("size", min: 0, max: 1024))
        if maxRunning == 0 { maxRunning = 2 * ProcessInfo.processInfo.activeProcessorCount }
        // Spares are prepared sandboxes; on LXD each would be a container of its own: none there.
        let spare = try sb.string("backend") == "lxd" ? 0 : Int(try pool.int("spare", min: 0, max: 1024))
        let poolSize = maxRunning + spare
        let level = try log.string("level")
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard levels.contains(level) else {
            throw ConfigError(key: "log.level", problem: "must be one of \(levels.joined(separator: ", ")), got \"\(level)\"")
        }
        let defaults = try limitSet(limits.table("default"))
        let maxima = try limitSet(limits.table("max"))
        for limit in Limit.allCases where defaults[limit] > maxima[limit] {
            throw ConfigError(key: "limits.default.\(limit.key)",
                              problem: "\(defaults[limit]) is above limits.max.\(limit.key) (\(maxima[limit]))")
        }
        let languagesNode = try root.table("languages")
        var languages: [LanguageSpec] = []
        for name in languagesNode.keys.sorted() {
            let spec = try language(name, languagesNode.table(name))
            languages.append(spec)
        }
        return CodesandConfig(
            socketPath: try socket.path("path"), socketGroup: try socket.string("group"), socketMode: mode,
            maxMessageBytes: Int(try rpc.int("max_message_bytes", min: 256, max: 1 << 30)),
            maxConnections: Int(try rpc.int("max_connections", min: 1, max: 1 << 20)),
            maxConnectionsPerUID: Int(try rpc.int("max_connections_per_uid", min: 1, max: 1 << 20)),
            defaultLimits: defaults, maxLimits: maxima, poolSize: poolSize, maxRunning: maxRunning,
            queueMax: Int(try queue.int("max", min: 0, max: 1_000_000)),
            queueMaxWaitMs: try queue.int("max_wait_ms", min: 0, max: 3_600_000),
            sandbox: try sandbox(sb), logLevel: level, logCode: try log.bool("log_code"), languages: languages)
    }

    /// A whole limit table ([limits.default], [limits.max]): every limit, each within the table's bounds.
    static func limitSet(_ t: ConfigNode) throws -> LimitSet {
        try LimitSet { limit in try t.int(limit.key, min: limit.row.minimum, max: limit.row.ceiling) }
    }

    static func sandbox(_ t: ConfigNode) throws -> SandboxConfig {
        let uidBase = try t.int("uid_base", min: 1000, max: 4_294_000_000)
        let home = try t.path("home")
        guard home != "/" else { throw ConfigError(key: "sandbox.home", problem: "must not be /") }
        let links = try t.stringMap("root_links")
        for (name, _) in links where name.contains("/") || name.isEmpty || name == "." || name == ".." {
            throw ConfigError(key: "sandbox.root_links.\(name)", problem: "must be a plain name at the root")
        }
        let masked = try t.paths("masked_paths")
        if let bad = masked.first(where: { !$0.hasPrefix("/proc/") }) {
            throw ConfigError(key: "sandbox.masked_paths", problem: "\(bad) is not under /proc")
        }
        return SandboxConfig(
            stateDir: try t.path("state_dir"), cgroupName: try cgroupName(t), rootfs: try rootfs(t), image: try t.path("image"),
            uidBase: UInt32(uidBase), hostname: try t.string("hostname"), home: home,
            tmpfsBytes: try t.int("tmpfs_bytes", min: 1 << 20, max: 1 << 40),
            tmpfsInodes: try t.int("tmpfs_inodes", min: 64, max: 1 << 30),
            readonlyPaths: try t.paths("readonly_paths"), rootLinks: links, maskedPaths: masked,
            fileSizeBytes: try t.int("file_size_bytes", min: 1, max: 1 << 40),
            openFiles: try t.int("open_files", min: 16, max: 1 << 20),
            socketMemoryBytes: try t.int("socket_memory_bytes", min: 1 << 20, max: 1 << 40), env: try t.stringMap("env"),
            zygoteLibrary: try absoluteOrEmpty(t, "zygote_library"), launcherDir: try absoluteOrEmpty(t, "launcher_dir"),
            compileCacheEntries: Int(try t.int("compile_cache_entries", min: 0, max: 1 << 20)),
            compileCacheBytes: try t.int("compile_cache_bytes", min: 0, max: 1 << 40),
            keepNetworkNamespace: try t.bool("keep_network_namespace"))
    }

    static func absoluteOrEmpty(_ t: ConfigNode, _ key: String) throws -> String {
        let path = try t.string(key)
        guard path.isEmpty || path.hasPrefix("/") else {
            throw ConfigError(key: "sandbox.\(key)", problem: "must be an absolute path or \"\", got \"\(path)\"")
        }
        return path
    }

    static func rootfs(_ t: ConfigNode) throws -> String {
        let mode = try t.string("rootfs")
        guard mode == "host" || mode == "image" else {
            throw ConfigError(key: "sandbox.rootfs", problem: "must be \"host\" or \"image\", got \"\(mode)\"")
        }
        return mode
    }

    static func cgroupName(_ t: ConfigNode) throws -> String {
        let name = try t.string("cgroup_name")
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }),
              name != ".", name != ".." else {
            throw ConfigError(key: "sandbox.cgroup_name", problem: "must be a plain name of letters, digits, - _ ., got \"\(name)\"")
        }
        return name
    }

    static func language(_ name: String, _ t: ConfigNode) throws -> LanguageSpec {
        let known: Set<String> = ["aliases", "file", "run", "env", "version", "compile", "template", "flags_pattern",
                                  "limits", "compile_limits", "compile_output", "prestart", "zygote", "launcher"]
        if let extra = t.keys.sorted().first(where: { !known.contains($0) }) {
            throw ConfigError(key: "\(t.path).\(extra)", problem: "unknown key")
        }
        let file = try t.string("file")
        guard !file.isEmpty, !file.contains("/"), file != ".", file != ".." else {
            throw ConfigError(key: "\(t.path).file", problem: "must be a plain file name, got \"\(file)\"")
        }
        let run = try t.stringArray("run")
        let compile = try t.stringArray("compile", default: [])
        let prestart = try t.stringArray("prestart", default: [])
        for (key, argv) in [("run", run), ("compile", compile), ("prestart", prestart)] where !argv.isEmpty || key == "run" {
            guard let first = argv.first, first.hasPrefix("/") || first.hasPrefix("{dir}/") else {
                throw ConfigError(key: "\(t.path).\(key)", problem: "must be an argv array starting with an absolute path or {dir}/")
            }
        }
        var spec = LanguageSpec(name: name, aliases: try t.stringArray("aliases", default: []), file: file, run: run,
                                env: try t.has("env") ? t.stringMap("env") : [:], version: try t.stringArray("version", default: []))
        spec.compile = compile
        spec.prestart = prestart
        spec.compileOutput = try t.has("compile_output") ? t.string("compile_output") : ""
        if !spec.compileOutput.isEmpty {
            let out = spec.compileOutput
            guard !out.contains("/"), out != ".", out != "..", out != file else {
                throw ConfigError(key: "\(t.path).compile_output", problem: "must be a plain file name other than `file`, got \"\(out)\"")
            }
            guard !compile.isEmpty else {
                throw ConfigError(key: "\(t.path).compile_output", problem: "needs a compile stage")
            }
        }
        if !prestart.isEmpty && !compile.isEmpty {
            throw ConfigError(key: "\(t.path).prestart", problem: "a compiled language cannot be pre-started")
        }
        spec.launcher = try t.has("launcher") ? t.string("launcher") : ""
        let namesLauncher = prestart.contains { $0.contains("{launcher}") || $0.contains("{launcher_stdin}") || $0.contains("{launcher_file}") }
        if !spec.launcher.isEmpty {
            guard !spec.launcher.contains("/"), spec.launcher != ".", spec.launcher != ".." else {
                throw ConfigError(key: "\(t.path).launcher", problem: "must be a file name in sandbox.launcher_dir, got \"\(spec.launcher)\"")
            }
            guard namesLauncher else {
                throw ConfigError(key: "\(t.path).launcher", problem: "is not used: no prestart element has {launcher}, {launcher_stdin} or {launcher_file}")
            }
        } else if namesLauncher {
            throw ConfigError(key: "\(t.path).prestart", problem: "names a launcher ({launcher}, {launcher_stdin} or {launcher_file}) but the language has no `launcher = \"FILE\"`")
        }
        spec.zygote = try t.has("zygote") ? t.bool("zygote") : false
        if spec.zygote && prestart.contains(where: { $0.contains("{launcher_file}") }) {
            throw ConfigError(key: "\(t.path).prestart", problem: "has {launcher_file}, which only an exec'd interpreter can use (not with zygote = true)")
        }
        if !spec.zygote && prestart.contains(where: { $0.contains("{launcher_stdin}") }) {
            throw ConfigError(key: "\(t.path).prestart", problem: "has {launcher_stdin}, which only a zygote can use (zygote = true)")
        }
        if spec.zygote && prestart.isEmpty {
            throw ConfigError(key: "\(t.path).zygote", problem: "needs a prestart launcher")
        }
        if t.has("template") {
            let tpl = try t.table("template")
            spec.templateUnless = try tpl.string("unless")
            spec.templateWrap = try tpl.string("wrap")
            guard spec.templateWrap!.contains("{code}") else {
                throw ConfigError(key: "\(tpl.path).wrap", problem: "must contain {code}")
            }
        }
        if t.has("flags_pattern") {
            let pattern = try t.string("flags_pattern")
            guard (try? Regex(pattern)) != nil else {
                throw ConfigError(key: "\(t.path).flags_pattern", problem: "is not a valid regular expression")
            }
            spec.flagsPattern = pattern
        }
        if t.has("limits") { spec.limits = try runLimits(t.table("limits")) }
        if t.has("compile_limits") { spec.compileLimits = try runLimits(t.table("compile_limits")) }
        return spec
    }

    /// A partial limit table (a language's overrides): known keys, each within the table's bounds.
    static func runLimits(_ t: ConfigNode) throws -> RunLimits {
        let keys = Limit.allCases.map(\.key)
        if let extra = t.keys.sorted().first(where: { !keys.contains($0) }) {
            throw ConfigError(key: "\(t.path).\(extra)", problem: "unknown limit (known: \(keys.joined(separator: ", ")))")
        }
        return try RunLimits { limit in
            t.has(limit.key) ? try t.int(limit.key, min: limit.row.minimum, max: limit.row.ceiling) : nil
        }
    }
}

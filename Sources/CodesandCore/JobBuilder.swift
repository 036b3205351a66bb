import CodesandProtocol

/// Turns a `run` request for a language into a sandbox job: template, argv, flags, environment, limits.
struct JobBuilder {
    let config: CodesandConfig
    let spec: LanguageSpec

    func job(for params: RunParams) throws(RPCError) -> SandboxJob {
        let flags = try checkedFlags(params.compileFlags ?? [])
        // The language's defaults, then the request's values.
        let limits = try LimitSet.resolve(params.limits, defaults: try languageLimits(), max: config.maxLimits)
        let home = config.sandbox.home
        let compile: CompileStage?
        if spec.compile.isEmpty {
            compile = nil
        } else {
            let compileLimits = try LimitSet.resolve(spec.compileLimits?.capped(by: config.maxLimits),
                                                     defaults: config.defaultLimits, max: config.maxLimits)
            var stage = CompileStage(argv: expand(spec.compile, home: home, args: [], flags: flags), limits: compileLimits)
            stage.output = spec.compileOutput
            stage.language = spec.name
            compile = stage
        }
        let args = params.args ?? []
        try Self.checkArgv(args, field: "params.args")
        var job = SandboxJob(argv: expand(spec.run, home: home, args: args, flags: flags), env: environment(),
                             fileName: spec.file, code: Array(applyTemplate(params.code).utf8),
                             stdin: Array((params.stdin ?? "").utf8), limits: limits, compile: compile)
        if !spec.prestart.isEmpty && params.prestart != false { job.prestart = (spec.name, [home + "/" + spec.file] + args) }
        return job
    }

    /// The sandbox's environment plus the language's, as "NAME=value" entries.
    func environment() -> [String] {
        var env = config.sandbox.env
        for (k, v) in spec.env { env[k] = v }
        return env.keys.sorted().map { "\($0)=\(env[$0]!)" }
    }

    /// The language's own defaults (the JVM needs more than Python), cut to the daemon's maxima.
    func languageLimits() throws(RPCError) -> LimitSet {
        try LimitSet.resolve(spec.limits?.capped(by: config.maxLimits), defaults: config.defaultLimits, max: config.maxLimits)
    }

    /// What a slot must start in advance to serve this language pre-started (nil: not pre-startable).
    func prestartSpec() -> PrestartSpec? {
        spec.prestart.isEmpty ? nil : PrestartSpec(language: spec.name, argv: spec.prestart, env: environment(), zygote: spec.zygote,
                                                    launcher: spec.launcher, limits: try? languageLimits())
    }

    /// PHP without `<?php`, Java without a class, C without main(): wrapped so it just works.
    func applyTemplate(_ code: String) -> String {
        guard let unless = spec.templateUnless, let wrap = spec.templateWrap, !code.contains(unless) else { return code }
        return wrap.replacingAll("{code}", with: code)
    }

    /// Each flag must match the language's allow-list whole; they reach the compiler as argv elements.
    func checkedFlags(_ flags: [String]) throws(RPCError) -> [String] {
        guard !flags.isEmpty else { return [] }
        let takesFlags = spec.compile.contains("{flags}") || spec.run.contains("{flags}")
        guard takesFlags, let pattern = spec.flagsPattern, let regex = try? Regex(pattern) else {
            throw .invalidParams("params.compile_flags: \(spec.name) takes no compile flags")
        }
        try Self.checkArgv(flags, field: "params.compile_flags")
        for (i, flag) in flags.enumerated() where (try? regex.wholeMatch(in: flag)) == nil {
            throw .invalidParams("params.compile_flags[\(i)] \"\(flag)\" is not allowed for \(spec.name) (allowed: \(pattern))")
        }
        return flags
    }

    /// What execve and the sandbox's init can take, checked before any sandbox is touched: a
    /// request past them could never run, so it is refused (-32602) naming the limit, not retried.
    static let maxArgCount = 4096
    static let maxArgBytes = 131_071        // the kernel's MAX_ARG_STRLEN (128 KiB) less the NUL
    static let maxArgTotalBytes = 1 << 20   // all of them; execve's whole budget is a quarter of the 8 MiB stack

    static func checkArgv(_ items: [String], field: String) throws(RPCError) {
        guard items.count <= maxArgCount else {
            throw .invalidParams("\(field) has \(items.count) elements; at most \(maxArgCount) are allowed")
        }
        var total = 0
        for (i, item) in items.enumerated() {
            let bytes = item.utf8.count
            if item.utf8.contains(0) { throw .invalidParams("\(field)[\(i)] contains a NUL character, which no argv element can hold") }
            if bytes > maxArgBytes { throw .invalidParams("\(field)[\(i)] is \(bytes) bytes; each may be at most \(maxArgBytes)") }
            total += bytes + 1
        }
        guard total <= maxArgTotalBytes else {
            throw .invalidParams("\(field) total \(total) bytes; at most \(maxArgTotalBytes) are allowed in all")
        }
    }

    /// `{file}`, `{dir}` inside elements; `{args}` and `{flags}` as whole elements, spliced.
    func expand(_ argv: [String], home: String, args: [String], flags: [String]) -> [String] {
        var out: [String] = []
        for element in argv {
            switch element {
            case "{args}": out.append(contentsOf: args)
            case "{flags}": out.append(contentsOf: flags)
            default:
                out.append(element.replacingAll("{file}", with: home + "/" + spec.file).replacingAll("{dir}", with: home))
            }
        }
        return out
    }
}

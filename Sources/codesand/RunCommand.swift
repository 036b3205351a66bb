import ArgumentParser
import CodesandClient
import CodesandProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a snippet and print its output.",
        discussion: """
            The snippet's stdout goes to stdout and its stderr to stderr, in the order it wrote \
            them. If it was stopped (timeout, out of memory, output limit, signal) a note follows \
            on stderr. The exit status is the snippet's exit code; 128+N when a signal N killed it; \
            124 on a timeout, as with timeout(1). With --stream the output is printed while the \
            snippet runs, as it arrives. With --json the result is printed as received and the \
            exit status is 0.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: [.short, .long], help: "The language, by name or alias (see `codesand languages`).")
    var language: String

    @Argument(help: "The code. Read from stdin when omitted.")
    var code: String?

    @Option(name: .customLong("stdin"), help: ArgumentHelp("Text to give the snippet on its stdin (default: empty).", valueName: "text"))
    var stdinText: String?

    @Option(name: .customLong("arg"), help: ArgumentHelp("An argument after the program file; repeat for more.", valueName: "x"))
    var args: [String] = []

    @OptionGroup(title: "Limits (each one not given takes the daemon's default)") var limits: LimitOptions

    @Option(help: ArgumentHelp("Who asks, for the daemon's logs and fairness (e.g. nick@#channel).", valueName: "who"))
    var requester: String?

    @Flag(help: "Print the result JSON exactly as received, on one line.")
    var json = false

    @Flag(help: "Print the output while the snippet runs, as it arrives (not with --json).")
    var stream = false

    func validate() throws {
        if stream && json { throw ValidationError("--stream and --json cannot be used together") }
    }

    func run() async throws {
        let source = code ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        let params = RunParams(language: language, code: source, stdin: stdinText,
                               args: args.isEmpty ? nil : args,
                               limits: limits.runLimits,
                               requester: requester, stream: stream ? true : nil)
        if json {
            let raw = try await global.withClient { client throws(CodesandClientError) in
                try await client.call(method: RPCMethod.run, params: params)
            }
            writeOut(1, raw + Data("\n".utf8))
            return
        }
        if stream {
            let (result, streamed) = try await global.withClient { client throws(CodesandClientError) in
                try await Self.printStreaming(params, on: client)
            }
            show(result, streamed: streamed)
            throw ExitCode(Self.exitStatus(of: result))
        }
        let result = try await global.withClient { client throws(CodesandClientError) in
            try await client.run(params)
        }
        show(result)
        throw ExitCode(Self.exitStatus(of: result))
    }

    /// Runs with `stream` and prints each chunk as it comes. Returns the result and the text
    /// printed of each stream.
    private static func printStreaming(_ params: RunParams, on client: CodesandClient)
        async throws(CodesandClientError) -> (RunResult, [CodesandProtocol.OutputStream: String]) {
        var printed: [CodesandProtocol.OutputStream: String] = [:]
        for try await event in client.runStreaming(params) {
            switch event {
            case .output(let chunk):
                writeOut(chunk.stream == .stdout ? 1 : 2, Data(chunk.text.utf8))
                printed[chunk.stream, default: ""] += chunk.text
            case .finished(let result):
                return (result, printed)
            }
        }
        throw .connectionClosed  // not reached: the stream throws when it ends without a result
    }

    /// Prints the output (or, when `streamed` is given, only what the stream did not bring), then
    /// the note on how the run was stopped.
    private func show(_ result: RunResult, streamed: [CodesandProtocol.OutputStream: String]? = nil) {
        if let compile = result.compile, result.status == .compileError, streamed?.isEmpty ?? true {
            // The compiler's complaints are what the user needs to see.
            for chunk in compile.output { writeOut(2, Data(chunk.text.utf8)) }
        }
        if let streamed {
            // The result holds all the output: print the end of a stream if its notifications missed it.
            for (fd, stream, full) in [(Int32(1), CodesandProtocol.OutputStream.stdout, result.stdout), (2, .stderr, result.stderr)] {
                let done = streamed[stream, default: ""].utf8
                if full.utf8.count > done.count && full.utf8.starts(with: done) {
                    writeOut(fd, Data(full.utf8.dropFirst(done.count)))
                }
            }
        } else if result.output.isEmpty {
            writeOut(1, Data(result.stdout.utf8))
            writeOut(2, Data(result.stderr.utf8))
        } else {
            for chunk in result.output {
                writeOut(chunk.stream == .stdout ? 1 : 2, Data(chunk.text.utf8))
            }
        }
        if let note = result.endingNote {
            printError("codesand: \(note)")
        }
    }

    static func exitStatus(of result: RunResult) -> Int32 {
        if result.status == .timeout { return 124 }
        if result.status == .compileError { return 1 }
        if let code = result.exitCode { return code }
        if let name = result.signal, let number = signalNumbers[name] { return 128 + number }
        return 1
    }

    static let signalNumbers: [String: Int32] = [
        "SIGHUP": SIGHUP, "SIGINT": SIGINT, "SIGQUIT": SIGQUIT, "SIGILL": SIGILL, "SIGTRAP": SIGTRAP,
        "SIGABRT": SIGABRT, "SIGBUS": SIGBUS, "SIGFPE": SIGFPE, "SIGKILL": SIGKILL, "SIGUSR1": SIGUSR1,
        "SIGSEGV": SIGSEGV, "SIGUSR2": SIGUSR2, "SIGPIPE": SIGPIPE, "SIGALRM": SIGALRM, "SIGTERM": SIGTERM,
        "SIGXCPU": SIGXCPU, "SIGXFSZ": SIGXFSZ, "SIGSYS": SIGSYS, "SIGVTALRM": SIGVTALRM, "SIGPROF": SIGPROF,
    ]
}

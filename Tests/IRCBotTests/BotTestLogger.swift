import Logging

/// The bot's own warnings and worse, in the tests' output.
let botTestLogger: Logger = {
    var logger = Logger(label: "codesand-ircbot-test")
    logger.logLevel = .warning
    return logger
}()

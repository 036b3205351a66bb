extension BotConfigFile {
    /// What `--print-default-config` prints: every option with its default, the optional ones
    /// commented out. A unit test reads it back and compares it with the built-in defaults.
    public static let defaultText = """
        # codesand-ircbot's configuration: the IRC network, the bot's identity, its limits.
        # Check it with: codesand-ircbot --check-config --config FILE

        # The bot's nick. While it is taken the bot uses another (nick_) and takes it back once free.
        nick = "codesand"
        username = "codesand"
        realname = "codesand: runs code snippets"
        # Joined after connecting, and again after every reconnect.
        channels = ["#codesand"]
        # One of trace, debug, info, notice, warning, error, critical.
        log_level = "info"

        # The servers, tried in turn when one cannot be reached: port 6697 with TLS (plain TCP: 6667).
        [[servers]]
        host = "irc.example.net"
        port = 6697
        tls = true

        # The server's certificate is checked against the system's CA store and must name the host.
        [tls]
        # Trust a private CA instead (a PEM file):
        # ca_file = "/etc/codesand/irc-ca.pem"
        # No check at all: anyone on the path could read and change the traffic. Logged as a warning.
        insecure = false
        # The bot's own certificate and key (PEM), for SASL EXTERNAL:
        # client_cert = "/etc/codesand/ircbot.crt"
        # client_key = "/etc/codesand/ircbot.key"

        # Logging in to the bot's account with IRCv3 SASL before joining: the mechanism is "none",
        # "plain" (account and password) or "external" (the client certificate above). A refused
        # login is logged and stops the bot: retrying would not make the password right.
        [sasl]
        mechanism = "none"
        # account = "codesand"
        # PLAIN's password is the first line of this file (make it readable by the bot only). Without
        # the key it comes from the environment variable CODESAND_IRCBOT_SASL_PASSWORD; never from flags.
        # password_file = "/etc/codesand/ircbot-sasl-password"

        # codesandd, which runs the snippets.
        [codesand]
        socket = "/run/codesand/codesand.sock"
        # How long to wait for a run's answer (its wall-clock limit plus queueing at the daemon).
        reply_timeout_seconds = 60
        # The wall-clock limit asked for each run, ms (unset: the daemon's default):
        # wall_ms = 5000

        # Snippets each nick, and each channel, may run per minute (also the burst); 0: no limit.
        [limits]
        runs_per_nick_per_minute = 5
        runs_per_channel_per_minute = 20

        # An answer: at most this many lines of output (then a "(N more lines)" note), bytes per line.
        [output]
        max_lines = 10
        max_line_bytes = 400

        # The bot's own pace, under the server's flood limit: this many lines at once, then this many
        # a second. Networks commonly allow a few lines at once, then about one a second.
        [send_queue]
        burst_lines = 5
        lines_per_second = 1.0

        # Staying connected: the wait between attempts (doubling after each failure, with jitter,
        # up to the maximum), the check of a quiet link (a PING after this long without a line, then
        # a reconnect if nothing comes back), and how often a taken nick is tried again.
        [connection]
        reconnect_delay_seconds = 2
        reconnect_max_delay_seconds = 300
        ping_interval_seconds = 90
        ping_timeout_seconds = 60
        regain_nick_seconds = 30
        # The server's own password (PASS), if it has one: the first line of this file.
        # server_password_file = "/etc/codesand/irc-server-password"

        # The first word of a message, and the language it runs. This table replaces the defaults.
        [triggers]
        \(TriggerMap.defaults.languages.sorted { $0.key < $1.key }.map { "\"\($0.key)\" = \"\($0.value)\"" }.joined(separator: "\n"))

        """
}

<?php
// codesand's pre-start launcher for php (README: "Pre-started interpreters", "Zygotes"). The daemon
// hands this text to `php -r` after a closing tag (config: prestart, "{launcher}"): -r code is PHP
// already, so the closing tag leaves PHP mode and this file's opening tag enters it again. (No
// closing tag may appear below, not even in a comment: it would end PHP mode there.) It waits on
// fd 3 for "path\0arg…", then requires the file as `php path args` would run it: $argv, $argc,
// $_SERVER. With two arguments (the zygote library and a socket fd) it starts once on the host as
// a zygote: each sandbox's interpreter is a fork of it, inside its sandbox, that goes on below.
if ($argc === 3) {
    (static function (string $library, int $sock): void {
        $zygote = FFI::cdef("int cs_zygote_announce(int sock); int cs_zygote_serve_one(int sock);
                             extern const int cs_zygote_child; extern const int cs_zygote_served;", $library);
        // A fork copies only the thread that forks: php-cli has no other (checked, as for ruby.rb).
        if (count(scandir("/proc/self/task")) !== 3) exit(1);
        gc_collect_cycles();  // what every fork shares, collected once here rather than in each fork
        if ($zygote->cs_zygote_announce($sock) !== 0) exit(0);
        // Each request forks. PHP's own fork (ext/pcntl's pcntl_fork, 8.2) is a bare fork(); what
        // is written is flushed first, and the random state is seeded lazily, at first use, in
        // the fork (nothing here draws a random number).
        do {
            flush();
            $got = $zygote->cs_zygote_serve_one($sock);
            if ($got !== $zygote->cs_zygote_child && $got !== $zygote->cs_zygote_served) exit(0);  // the daemon is gone
        } while ($got !== $zygote->cs_zygote_child);
        // The fork, in its sandbox. At exit PHP frees its persistent data (malloc's heap, shared
        // with the zygote): each page it writes would be copied then, on the run's clock (~1 ms).
        // Copied now instead, before the run, by writing each page's first byte back.
        foreach (file("/proc/self/maps") as $line) {
            if (!str_ends_with(rtrim($line), "[heap]")) continue;
            [$from, $to] = array_map("hexdec", explode("-", explode(" ", $line, 2)[0]));
            $page = $zygote->cast("unsigned char *", $from);
            for ($at = 0; $at < $to - $from; $at += 4096) $page[$at] = $page[$at];
        }
    })($argv[1], (int)$argv[2]);
}
$__codesand = explode("\0", stream_get_contents(fopen("php://fd/3", "r")));
$argv = $__codesand; $argc = count($argv); unset($__codesand);
$_SERVER["argv"] = $argv; $_SERVER["argc"] = $argc;
$_SERVER["SCRIPT_FILENAME"] = $_SERVER["SCRIPT_NAME"] = $_SERVER["PHP_SELF"] = $argv[0];
// The run's start, not the interpreter's (which started before the request, or is a zygote's fork).
$_SERVER["REQUEST_TIME_FLOAT"] = microtime(true); $_SERVER["REQUEST_TIME"] = (int)$_SERVER["REQUEST_TIME_FLOAT"];
require $argv[0];

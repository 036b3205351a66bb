<?php
// codesand's pre-start launcher for php (README: "Pre-started interpreters"). The daemon hands this
// text to `php -r` after a closing tag (config: prestart, "{launcher}"): -r code is PHP already, so
// the closing tag leaves PHP mode and this file's opening tag enters it again. (No closing tag may
// appear below, not even in a comment: it would end PHP mode there.) It waits on fd 3 for
// "path\0arg…", then requires the file as `php path args` would run it: $argv, $argc, $_SERVER.
$__codesand = explode("\0", stream_get_contents(fopen("php://fd/3", "r")));
$argv = $__codesand; $argc = count($argv); unset($__codesand);
$_SERVER["argv"] = $argv; $_SERVER["argc"] = $argc;
$_SERVER["SCRIPT_FILENAME"] = $_SERVER["SCRIPT_NAME"] = $_SERVER["PHP_SELF"] = $argv[0];
require $argv[0];

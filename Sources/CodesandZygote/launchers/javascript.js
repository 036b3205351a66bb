// codesand's pre-start launcher for javascript (README: "Pre-started interpreters"). The daemon
// runs it as node's main script, `node --preserve-symlinks-main /proc/self/fd/5` (config:
// prestart, "{launcher_file}"): fd 5 holds this text, a file of the sandbox's own. (As `-e` text
// it cost ~3 ms of CPU more per start than a main script: node's eval path.) It waits on fd 3
// for "path\0arg…", then runs the file as `node path args` would: the same entry point, so
// require.main, __filename, argv, execArgv, require.cache and the top of a stack trace are a
// plain run's.
process.stdout; process.stderr;  // made before the wait for the job, off the run's clock
const fs = require("fs");
if (__filename === "/proc/self/fd/5") fs.closeSync(5);  // not as -e text (an older config): 5 is node's then
const codesandArgv = fs.readFileSync(3).toString("utf8").split("\0");
fs.closeSync(3);
delete require.cache[__filename];
process.argv = [process.execPath].concat(codesandArgv);
process.execArgv = [];
require("module").runMain(codesandArgv[0]);

// codesand's pre-start launcher for javascript (README: "Pre-started interpreters"). The daemon
// runs it as `node -e <this text>` (config: prestart, "{launcher}"). It waits on fd 3 for
// "path\0arg…", then loads the file as `node path args` would: require.main, __filename, argv.
process.stdout; process.stderr;  // made before the wait for the job, off the run's clock
const codesandArgv = require("fs").readFileSync(3).toString("utf8").split("\0");
require("fs").closeSync(3);
process.argv = [process.execPath].concat(codesandArgv);
require("module")._load(codesandArgv[0], null, true);

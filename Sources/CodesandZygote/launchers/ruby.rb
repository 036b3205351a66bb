# codesand's pre-start launcher for ruby (README: "Pre-started interpreters"). The daemon runs it
# as `ruby -e <this text>` (config: prestart, "{launcher}"). It waits on fd 3 for "path\0arg…",
# then loads the file as `ruby path args` would: $0, ARGV.
codesand_argv = IO.new(3).read.split("\0", -1)
$0 = codesand_argv[0]
ARGV.replace(codesand_argv[1..] || [])
load codesand_argv.shift

# codesand's pre-start launcher for ruby (README: "Pre-started interpreters", "Zygotes"). The daemon
# runs it as `ruby -e <this text>` (config: prestart, "{launcher}"). It waits on fd 3 for "path\0arg…",
# then loads the file as `ruby path args` would: $0, ARGV. With two arguments (the zygote library
# and a socket fd) it starts once on the host as a zygote: each sandbox's interpreter is a fork of
# it, inside its sandbox, that goes on below the `if` (locals of -e code are not the loaded file's).
if ARGV.size == 2
  require "fiddle"
  codesand_zygote = lambda do |library, sock|
    # need_gvl: the call keeps the GVL, as Ruby's own fork does (no other thread may run meanwhile).
    fn = ->(handle, name, args, ret) { Fiddle::Function.new(handle[name], args, ret, need_gvl: true) }
    int, lib, libc = Fiddle::TYPE_INT, Fiddle.dlopen(library), Fiddle::Handle::DEFAULT
    announce, serve_one = fn.(lib, "cs_zygote_announce", [int], int), fn.(lib, "cs_zygote_serve_one", [int], int)
    atfork = fn.(libc, "rb_thread_atfork", [], Fiddle::TYPE_VOID)
    eventfd, dup3, close = fn.(libc, "eventfd", [int, int], int), fn.(libc, "dup3", [int, int, int], int), fn.(libc, "close", [int], int)
    # What cs_zygote_serve_one returns (csandbox.h), read from the library rather than repeated here.
    child, served = %w[cs_zygote_child cs_zygote_served].map { |name| Fiddle::Pointer.new(lib[name])[0, 4].unpack1("l") }
    # Ruby's fork protocol reaches its threads only from Process.fork: with another thread alive
    # (none is, at start: Ruby 3.1 has no timer thread), a fork could hold a lock that thread held.
    # Not served then: sandboxes start ruby the exec way.
    threads = [Thread.list.size, Dir.children("/proc/self/task").size]
    abort "codesand zygote: #{threads} Ruby and native threads, not serving" unless threads == [1, 1]
    # Ruby's timer wake-up fds (eventfds, made at start). The sandbox's init closes every fd but
    # the job's; the fork's Ruby closes these numbers and makes its own (below), and aborts if
    # nothing is open there.
    wakeup_fds = Dir.children("/proc/self/fd").map(&:to_i).select { |fd| File.readlink("/proc/self/fd/#{fd}") == "anon_inode:[eventfd]" rescue false }
    # Ruby's POSIX timer (SIGVTALRM; thread_pthread.c: timer_posix, whose address the kernel
    # shows as the timer's value): its state, then its owner's pid. Checked here, since the fork
    # writes it: 0 (alive, disarmed) and this process.
    timers = File.read("/proc/self/timers").scan(%r{^signal: (\d+)/(\h+)$})
    abort "codesand zygote: Ruby's timers are not as expected: #{timers}" unless timers.size == 1 && timers[0][0].to_i == Signal.list["VTALRM"]
    ubf_timer = Fiddle::Pointer.new(timers[0][1].to_i(16))
    abort "codesand zygote: Ruby's timer state is not as expected" unless ubf_timer[0, 8].unpack("lL") == [0, Process.pid]
    GC.start
    GC.compact  # what every fork shares, packed: fewer pages that the forks' writes copy
    exit!(0) if announce.(sock) != 0
    loop do  # each request forks: around it, what Process.fork does (process.c: rb_fork_ruby)
      $stdout.flush
      $stderr.flush
      got = serve_one.(sock)
      break if got == child
      exit!(0) if got != served  # the daemon is gone
    end
    # The fork, in its sandbox. Fresh eventfds where Ruby's were, for it to close: never the zygote's
    # (the init closed them; were one still open, it would be replaced, never written to).
    wakeup_fds.each do |fd|
      held = File.readlink("/proc/self/fd/#{fd}") rescue nil
      raise "codesand: fd #{fd} is #{held}, not Ruby's eventfd" unless held.nil? || held == "anon_inode:[eventfd]"
      made = eventfd.(0, 0o2000000)  # EFD_CLOEXEC
      raise "eventfd: #{Fiddle.last_error}" if made < 0 || (made != fd && (dup3.(made, fd, 0o2000000) < 0 || close.(made) < 0))
    end
    # What Ruby's fork did to its timer before forking (ubf_timer_destroy), which the kernel did
    # for this fork (no timer is inherited): marked dead, for the restart below to make its own.
    ubf_timer[0, 4] = [3].pack("l")  # RTIMER_DEAD
    atfork.()  # the thread list, the GVL, fibers; a new random seed (CVE-2003-0900)
    # Ruby's fork also restarts its timer (wake-up fds, the POSIX timer: a fork has none), which
    # libruby does not export; a failed exec ends the same way (process.c: rb_f_exec's after_exec).
    begin
      Process.exec("/")
    rescue SystemCallError
    end
  end
  codesand_zygote.(ARGV[0], Integer(ARGV[1]))
  codesand_zygote = nil
end
codesand_argv = IO.new(3).read.split("\0", -1)
$0 = codesand_argv[0]
ARGV.replace(codesand_argv[1..] || [])
load codesand_argv.shift

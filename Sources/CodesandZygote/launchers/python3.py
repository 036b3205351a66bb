# codesand's pre-start launcher for python3 (README: "Pre-started interpreters", "Zygotes").
# The daemon runs it as `python3 -c <this text>` (config: prestart, "{launcher}").
#
# In a prepared sandbox it waits on fd 3 for "path\0arg…", then runs the file as `python3 path
# args` would: __main__, __file__, sys.argv, sys.path[0], exit codes, tracebacks without its frame.
# With two arguments (the zygote library and a socket fd) it starts once on the host as a zygote:
# each sandbox's interpreter is a fork of it, inside its sandbox, that goes on below the `if`.
import os, sys
if len(sys.argv) == 3:
    import ctypes, gc
    _zygote, _api = ctypes.PyDLL(sys.argv[1]), ctypes.pythonapi  # PyDLL: calls keep the GIL, as os.fork
    # What cs_zygote_serve_one returns (csandbox.h), read from the library rather than repeated here.
    _CHILD, _SERVED = (ctypes.c_int.in_dll(_zygote, name).value for name in ("cs_zygote_child", "cs_zygote_served"))
    gc.freeze()  # the collector must not touch (and so copy) the objects every fork shares
    if _zygote.cs_zygote_announce(int(sys.argv[2])) != 0:
        os._exit(0)
    while True:  # each request forks: around it, the runtime's own fork protocol
        _api.PyOS_BeforeFork()
        _served = _zygote.cs_zygote_serve_one(int(sys.argv[2]))
        if _served == _CHILD:  # the fork, in its sandbox: locks, threads, at-fork hooks (random reseeds)
            _api.PyOS_AfterFork_Child()
            break
        _api.PyOS_AfterFork_Parent()
        if _served != _SERVED:
            os._exit(0)  # the daemon is gone
    import time
    time.tzset()  # the sandbox's /etc/localtime, not the host's
    del _zygote, _api, _served, _CHILD, _SERVED
compile("", "<codesand>", "exec")
def _codesand_run():
    # Loaded at start-up already; importing `types` or `importlib.machinery` would cost ~1.5 ms.
    from _frozen_importlib_external import SourceFileLoader
    data = b""
    while True:
        chunk = os.read(3, 65536)
        if not chunk:
            break
        data += chunk
    os.close(3)
    argv = [a.decode("utf-8", "surrogateescape") for a in data.split(b"\0")]
    path = argv[0]
    sys.argv[:] = argv
    sys.orig_argv[:] = [sys.executable] + argv  # as `python3 main.py`, not the launcher's
    sys.path[0] = os.path.dirname(path)
    main = type(sys)("__main__")
    main.__file__ = path
    main.__cached__ = None
    main.__loader__ = SourceFileLoader("__main__", path)
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    with open(path, "rb") as f:
        source = f.read()
    try:
        code = compile(source, path, "exec")
        del source, data, f
        exec(code, main.__dict__)
    except SystemExit:
        raise
    except BaseException:
        kind, value, tb = sys.exc_info()
        tb = tb.tb_next if kind is not SyntaxError else None  # this launcher's frame is not the program's
        sys.excepthook(kind, value.with_traceback(tb), tb)
        sys.exit(1)
_codesand_run()

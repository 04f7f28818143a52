"""Driver of the real-client suite (clients/README.md).

usage: python client_main.py CLIENT VARIANT MODULE_DIR
  CLIENT:  pybind11 | nanobind | pyo3 | cython | cffi | ctypes   (native threads calling Python)
           capi | pyqwest                                          (daemon variant only)
  VARIANT: polite-join          start, run, stop() (joins), exit
           polite-atexit-before atexit.register(stop) BEFORE starting the threads, run, exit
           polite-atexit-after  start, run, then atexit.register(stop), exit
           rude                 start, run, exit with the threads still calling in
           rude-forever         start with a callback that never returns (a Python loop), run,
                                exit with the native threads still inside it
           polite-idle          (pybind11 only) threads call in a while, then idle in C without
                                a thread state until the process exits
           daemon               Python's own daemon threads (threading.Thread(daemon=True)) call
                                the client's blocking function in a loop (the GIL released around
                                ~2 ms of blocking work); the main thread returns while they run.
                                pyqwest: 16 threads, each a SyncClient GETting GG_HTTP_URL.
           daemon-cb            (pybind11, nanobind, pyo3) the same, the blocking function calls
                                back into Python (gil_scoped_acquire / Python::attach) inside its
                                release
  MODULE_DIR: where the built module is (gg_pyb*.so, gg_nb*.so, gg_pyo3*.so, gg_cy*.so,
              gg_cy_daemon*.so, _gg_cffi*.so, libgg_ct.so, gg_capi*.so; pyqwest's install dir);
              cffi also needs its _cffi_backend on PYTHONPATH.
Env: GG_CLIENT_THREADS (native threads of each kind, default 2), GG_CLIENT_RUN_MS (default 300;
     100 for daemon, daemon-cb and rude-forever),
     GG_DAEMON_THREADS (default 4; pyqwest 16), GG_BLOCK_MS (default 2),
     GG_HTTP_URL (pyqwest: the URL to GET; the runner serves it with `python -m http.server`).

Output. Polite variants print one line `RESULT client=... variant=... started=N finished=N
vanished=N calls=N ...` after stop() returned (`vanished` = workers that did not leave their loop
cleanly; exit 3 if the callback never ran or a worker vanished). Rude and daemon variants print a
`START client=... variant=...` line, then, from the main thread just before it returns, a final
marker line `RESULT client=... variant=... calls=N ... done`; neither is flushed by hand: they reach
the pipe only through the interpreter's normal exit (exit 3 if nothing was ever called).
"""
import atexit
import os
import sys
import time

client, variant, moddir = sys.argv[1], sys.argv[2], sys.argv[3]
NTHREADS = int(os.environ.get("GG_CLIENT_THREADS", "2"))
# Daemon and rude-forever programs need no long run: their threads are inside the client
# library (or the callback) from their first iteration on.
_short = variant.startswith("daemon") or variant == "rude-forever"
RUN_S = int(os.environ.get("GG_CLIENT_RUN_MS", "100" if _short else "300")) / 1000.0
DAEMON_THREADS = int(os.environ.get("GG_DAEMON_THREADS", "16" if client == "pyqwest" else "4"))
BLOCK_MS = int(os.environ.get("GG_BLOCK_MS", "2"))
sys.path.insert(0, moddir)

py_calls = [0]
forever_iters = [0]


def work():
    s = 0
    for i in range(50):
        s += i
    time.sleep(0)
    py_calls[0] += 1


def forever():
    """rude-forever's callback: never returns (a pure Python loop, the GIL switched by the eval
    loop), so the native thread that called it is inside the interpreter at finalization."""
    py_calls[0] += 1
    while True:
        s = 0
        for i in range(50):
            s += i
        forever_iters[0] += 1


def load(cb):
    """Return (start(n), stop(), counts() -> (started, finished, calls)); the threads call cb."""
    if client == "pybind11":
        import gg_pyb as m
        return (lambda n: m.start(n, cb)), m.stop, m.counts
    if client == "nanobind":
        import gg_nb as m
        return (lambda n: m.start(n, cb)), m.stop, m.counts
    if client == "pyo3":
        import gg_pyo3 as m
        return (lambda n: m.start(n, cb)), m.stop, m.counts
    if client == "cython":
        import gg_cy as m
        return (lambda n: m.start(n, cb)), m.stop, m.counts
    if client == "cffi":
        from _gg_cffi import ffi, lib

        @ffi.def_extern()
        def gg_cb(kind):
            cb()
            if kind == 1:
                lib.gg_foreign()  # GIL released by cffi; calls gg_cb(2) nested

        return lib.gg_start, lib.gg_stop, lambda: (lib.gg_started(), lib.gg_finished(), lib.gg_calls())
    if client == "ctypes":
        import ctypes
        lib = ctypes.CDLL(os.path.join(moddir, "libgg_ct.so"))
        CB = ctypes.CFUNCTYPE(None, ctypes.c_int)

        def ct_cb(kind):
            cb()
            if kind == 1:
                lib.gg_foreign(2)  # GIL released by ctypes; calls cb(2) nested

        keep = CB(ct_cb)
        globals()["_keep_ctypes_callback"] = keep
        lib.gg_start.argtypes = [ctypes.c_int, CB]
        lib.gg_foreign.argtypes = [ctypes.c_int]
        lib.gg_calls.restype = ctypes.c_long
        return (lambda n: lib.gg_start(n, keep)), lib.gg_stop, lambda: (lib.gg_started(), lib.gg_finished(), lib.gg_calls())
    raise SystemExit("unknown client " + client)


def daemon_op():
    """The blocking call one daemon thread makes in a loop (variants daemon, daemon-cb)."""
    cb = variant == "daemon-cb"
    if client in ("pybind11", "nanobind"):
        m = __import__("gg_pyb" if client == "pybind11" else "gg_nb")
        if cb:
            return lambda: m.blocking_cb(BLOCK_MS, work)
        return lambda: m.blocking(BLOCK_MS)
    if client == "pyo3":
        import gg_pyo3 as m
        if cb:
            return lambda: m.blocking_cb(BLOCK_MS, work)
        held = ["an object held across py.detach by an Arc"]
        return lambda: m.blocking(BLOCK_MS, held)
    if cb:
        raise SystemExit(f"variant daemon-cb: not for {client}")
    if client == "cython":
        import gg_cy_daemon as m  # C++ module: `with nogil` around C++ code with destructors
        return lambda: m.blocking(BLOCK_MS)
    if client == "cffi":
        from _gg_cffi import lib
        return lambda: lib.gg_block(BLOCK_MS)  # cffi releases the GIL around the call
    if client == "ctypes":
        import ctypes
        lib = ctypes.CDLL(os.path.join(moddir, "libgg_ct.so"))  # CDLL: GIL released per call
        lib.gg_block.argtypes = [ctypes.c_int]
        lib.gg_block.restype = None
        return lambda: lib.gg_block(BLOCK_MS)
    if client == "capi":
        import gg_capi as m  # Py_BEGIN/END_ALLOW_THREADS
        return lambda: m.blocking(BLOCK_MS)
    if client == "pyqwest":
        import pyqwest
        url = os.environ["GG_HTTP_URL"]

        def per_thread():
            c = pyqwest.SyncClient()

            def get():
                r = c.get(url, timeout=5.0)
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}")
            return get
        return per_thread  # a factory: one SyncClient per thread (issue 164's reproducer)
    raise SystemExit("unknown client " + client)


def run_daemon():
    import threading
    op = daemon_op()
    calls, errors = [0], []

    def loop():
        # A client per thread for pyqwest; the shared op otherwise.
        call = op() if client == "pyqwest" else op
        while True:
            try:
                call()
                calls[0] += 1
            except Exception as e:  # counted, then on (pyqwest: as in its issue 164's reproducer)
                errors.append(repr(e))
                time.sleep(0.01)

    for _ in range(DAEMON_THREADS):
        threading.Thread(target=loop, daemon=True).start()
    print(f"START client={client} variant={variant} daemon_threads={DAEMON_THREADS} block_ms={BLOCK_MS}")
    run_until(lambda: calls[0] > 0)
    extra = ""
    if client == "pyo3" and variant == "daemon":
        import gg_pyo3
        extra = f" holder_drops={gg_pyo3.holder_drops()}"
    if client == "cython":
        import gg_cy_daemon
        made, gone = gg_cy_daemon.raii_counts()
        extra = f" raii_made={made} raii_destroyed={gone}"
    first_error = f" first_error={errors[0]!r}" if errors else ""
    # The marker: not flushed by hand, it reaches the pipe only through the normal exit.
    print(f"RESULT client={client} variant={variant} daemon_threads={DAEMON_THREADS} calls={calls[0]} "
          f"errors={len(errors)}{extra}{first_error} done")
    if calls[0] == 0:
        sys.stdout.flush()
        os._exit(3)
    sys.exit(0)


def run_until(cond):
    """RUN_S, and then until cond() (at most 20 s more): the checks below must not depend on
    how quickly a loaded machine schedules the threads."""
    time.sleep(RUN_S)
    deadline = time.time() + 20
    while not cond() and time.time() < deadline:
        time.sleep(0.01)


if variant.startswith("daemon"):
    run_daemon()

start, stop, counts = load(forever if variant == "rude-forever" else work)
status = [0]


def run_until_called():
    run_until(lambda: counts()[2] > 0)


def stop_and_report():
    stop()
    started, finished, calls = counts()
    vanished = started - finished
    print(f"RESULT client={client} variant={variant} started={started} finished={finished} "
          f"vanished={vanished} calls={calls} py_calls={py_calls[0]}", flush=True)
    if vanished or calls == 0:
        status[0] = 3
        os._exit(3)  # sys.exit inside an atexit handler would not change the exit status


if variant == "polite-join":
    start(NTHREADS)
    run_until_called()
    stop_and_report()
elif variant == "polite-atexit-before":
    atexit.register(stop_and_report)
    start(NTHREADS)
    run_until_called()
elif variant == "polite-atexit-after":
    start(NTHREADS)
    run_until_called()
    atexit.register(stop_and_report)
elif variant == "polite-idle":
    # pybind11 only: threads that called in through gil_scoped_acquire, then stay alive idle in
    # C (no thread state, not in CPython) until the process exits, like an idle pool thread.
    import gg_pyb
    gg_pyb.start_idle(NTHREADS, work)
    deadline = time.time() + 20
    while gg_pyb.idle_count() < NTHREADS and time.time() < deadline:
        time.sleep(0.01)
    started, finished, calls = counts()
    idle = gg_pyb.idle_count()
    print(f"RESULT client={client} variant={variant} started={started} idle={idle} calls={calls}", flush=True)
    if idle < NTHREADS or calls == 0:
        os._exit(3)
elif variant == "rude":
    start(NTHREADS)
    print(f"START client={client} variant={variant} threads={2 * NTHREADS}")
    run_until_called()
    started, finished, calls = counts()
    # The marker: not flushed by hand, it reaches the pipe only through the normal exit.
    print(f"RESULT client={client} variant={variant} started={started} calls={calls} done")
    if calls == 0:
        sys.stdout.flush()
        os._exit(3)
elif variant == "rude-forever":
    start(NTHREADS)
    print(f"START client={client} variant={variant} threads={2 * NTHREADS}")
    run_until(lambda: forever_iters[0] > 0)
    started = counts()[0]
    print(f"RESULT client={client} variant={variant} started={started} entered={py_calls[0]} "
          f"iterations={forever_iters[0]} done")
    if forever_iters[0] == 0:
        sys.stdout.flush()
        os._exit(3)
else:
    raise SystemExit("unknown variant " + variant)
sys.exit(status[0])

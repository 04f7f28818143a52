"""Driver of the real-client suite (clients/README.md).

usage: python client_main.py CLIENT VARIANT MODULE_DIR
  CLIENT:  pybind11 | nanobind | pyo3 | cython | cffi | ctypes
  VARIANT: polite-join          start, run, stop() (joins), exit
           polite-atexit-before atexit.register(stop) BEFORE starting the threads, run, exit
           polite-atexit-after  start, run, then atexit.register(stop), exit
           rude                 start, run, exit with the threads still calling in
           polite-idle          (pybind11 only) threads call in a while, then idle in C without
                                a thread state until the process exits
  MODULE_DIR: where the built module is (gg_pyb*.so, gg_nb*.so, gg_pyo3*.so, gg_cy*.so,
              _gg_cffi*.so, libgg_ct.so);
              cffi also needs its _cffi_backend on PYTHONPATH.
Env: GG_CLIENT_THREADS (threads of each kind, default 2), GG_CLIENT_RUN_MS (default 300).

Prints one line `RESULT client=... variant=... started=N finished=N vanished=N calls=N ...` (polite
variants, after stop() returned; `vanished` = workers that did not leave their loop cleanly) or
`RESULT ... calls=N` (rude, before exiting). Exit 3 if the callback never ran or a worker vanished.
"""
import atexit
import os
import sys
import time

client, variant, moddir = sys.argv[1], sys.argv[2], sys.argv[3]
NTHREADS = int(os.environ.get("GG_CLIENT_THREADS", "2"))
RUN_S = int(os.environ.get("GG_CLIENT_RUN_MS", "300")) / 1000.0
sys.path.insert(0, moddir)

py_calls = [0]


def work():
    s = 0
    for i in range(50):
        s += i
    time.sleep(0)
    py_calls[0] += 1


def load():
    """Return (start(n), stop(), counts() -> (started, finished, calls))."""
    if client == "pybind11":
        import gg_pyb as m
        return (lambda n: m.start(n, work)), m.stop, m.counts
    if client == "nanobind":
        import gg_nb as m
        return (lambda n: m.start(n, work)), m.stop, m.counts
    if client == "pyo3":
        import gg_pyo3 as m
        return (lambda n: m.start(n, work)), m.stop, m.counts
    if client == "cython":
        import gg_cy as m
        return (lambda n: m.start(n, work)), m.stop, m.counts
    if client == "cffi":
        from _gg_cffi import ffi, lib

        @ffi.def_extern()
        def gg_cb(kind):
            work()
            if kind == 1:
                lib.gg_foreign()  # GIL released by cffi; calls gg_cb(2) nested

        return lib.gg_start, lib.gg_stop, lambda: (lib.gg_started(), lib.gg_finished(), lib.gg_calls())
    if client == "ctypes":
        import ctypes
        lib = ctypes.CDLL(os.path.join(moddir, "libgg_ct.so"))
        CB = ctypes.CFUNCTYPE(None, ctypes.c_int)

        def cb(kind):
            work()
            if kind == 1:
                lib.gg_foreign(2)  # GIL released by ctypes; calls cb(2) nested

        keep = CB(cb)
        globals()["_keep_ctypes_callback"] = keep
        lib.gg_start.argtypes = [ctypes.c_int, CB]
        lib.gg_foreign.argtypes = [ctypes.c_int]
        lib.gg_calls.restype = ctypes.c_long
        return (lambda n: lib.gg_start(n, keep)), lib.gg_stop, lambda: (lib.gg_started(), lib.gg_finished(), lib.gg_calls())
    raise SystemExit("unknown client " + client)


start, stop, counts = load()
status = [0]


def run_until_called():
    """RUN_S, and then until at least one callback was made (at most 20 s more): "calls > 0"
    below must not depend on how quickly a loaded machine schedules the threads."""
    time.sleep(RUN_S)
    deadline = time.time() + 20
    while counts()[2] == 0 and time.time() < deadline:
        time.sleep(0.01)


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
    run_until_called()
    started, finished, calls = counts()
    print(f"RESULT client={client} variant={variant} started={started} calls={calls}", flush=True)
    if calls == 0:
        os._exit(3)
else:
    raise SystemExit("unknown variant " + variant)
sys.exit(status[0])

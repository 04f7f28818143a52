"""Driver for clients/gg_cy_gilgate.pyx (harness/tests/cython_gilgate.rs).

usage: python cython_gilgate_main.py MODULE_DIR RUN_S
Starts 2 + 2 C threads calling in through gilgate, waits until each made a call, lets them
run RUN_S seconds more, then exits with
them still calling in: they meet finalization. The module's C atexit handler prints the RESULT
line after Py_FinalizeEx and sets the exit status.
"""
import sys
import time

sys.path.insert(0, sys.argv[1])
import gg_cy_gilgate as m  # noqa: E402


def work():
    s = 0
    for i in range(50):
        s += i
    time.sleep(0)


m.start(2, work)
deadline = time.time() + 30
while m.ready() < 4 and time.time() < deadline:  # every thread in its loop, even on a busy machine
    time.sleep(0.001)
time.sleep(float(sys.argv[2]))

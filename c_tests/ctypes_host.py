# An ordinary Python program using a C library (c_tests/cbthread.c) whose own threads call back
# into Python through ctypes. The interpreter finalizes while they still call.
#   python ctypes_host.py /path/to/libcbthread.so [threads] [on-go FILE]
# on-go: one thread instead, whose first callback waits until FILE exists (created by a debugger
# holding the main thread inside Py_FinalizeEx: harness/tests/dropin.rs).
import ctypes
import sys
import time

lib = ctypes.CDLL(sys.argv[1])
CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)


def work(i):
    return sum(range(i % 50))


keep = CB(work)
if len(sys.argv) > 3 and sys.argv[3] == "on-go":
    lib.cbthread_start_on_go(keep, sys.argv[4].encode())
else:
    lib.cbthread_start(keep, int(sys.argv[2]) if len(sys.argv) > 2 else 4)
time.sleep(0.05)
print("RESULT main-exiting vanished=0 ", flush=True)

# benches/exit_rude.py LIB [THREADS]: a rude program. 4 native threads of LIB (benches/exit_rude.c)
# call a ctypes CFUNCTYPE callback in a loop; once each has called a few times the main thread
# returns without stopping them, so they keep calling in while CPython finalizes.
import ctypes, sys, time

lib = ctypes.CDLL(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 4
CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
total = [0]


def cb(i):
    total[0] += i
    return 0


keep = CB(cb)
lib.calls.restype = ctypes.c_uint64
if lib.start(n, keep) != 0:
    sys.exit("pthread_create failed")
deadline = time.time() + 10
while lib.calls() < 50 * n and time.time() < deadline:
    time.sleep(0.001)
print("calls", lib.calls())

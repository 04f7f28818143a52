# benches/exit_daemon.py [THREADS]: 8 Python daemon threads loop on gg_nap.nap(10)
# (benches/exit_daemon_ext.c: release the GIL, usleep 2 ms, take it back); once each has napped,
# the main thread returns: CPython finalizes while they keep taking the GIL back.
import sys, threading, time
import gg_nap

n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
started = [0] * n


def loop(i):
    while True:
        gg_nap.nap(10)
        started[i] += 1


for i in range(n):
    threading.Thread(target=loop, args=(i,), daemon=True).start()
deadline = time.time() + 10
while min(started) < 1 and time.time() < deadline:
    time.sleep(0.005)
print("started", n)

# signal.pause() under gilgate's pause(): CPython's own call of libc's pause, which gilgate watches
# in timed slices (src/exports/interpose.rs) when the runtime is alive. It must still return when
# a signal handler runs, and a thread left in it at exit must not change how the process ends.
#   python pause_host.py
import os
import signal
import sys
import threading
import time

caught = []
signal.signal(signal.SIGUSR1, lambda signum, frame: caught.append(signum))
# Woken by a signal: the main thread waits in pause() until a handler runs.
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1)).start()
t0 = time.monotonic()
signal.pause()
waited = time.monotonic() - t0
assert caught == [signal.SIGUSR1], caught
assert waited >= 0.25, waited
# Left waiting: a daemon thread in signal.pause() when the interpreter finalizes.
threading.Thread(target=signal.pause, daemon=True).start()
time.sleep(0.1)
print("RESULT pause woken after %.2f s; daemon left in pause vanished=0 " % waited, flush=True)
sys.exit(0)

"""A Python workload that switches the GIL constantly; prints its wall time in seconds.

Run by benches/run.sh with and without LD_PRELOAD=libgilgate.so (interleaved runs). Every
operation below releases and re-acquires the GIL (Py_BEGIN/END_ALLOW_THREADS), in CPython's own
code (time.sleep, os.read: builtin modules in libpython) and in an extension module (_hashlib /
_sha256 for buffers >= 2048 bytes, the size from which hashlib drops the GIL). 4 threads run
concurrently, so the GIL is also handed between threads all the time.

Usage: python workload.py [ITERATIONS_PER_THREAD]   (default 20000)
"""
import hashlib
import os
import sys
import threading
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
BUF = b"x" * 4096  # >= HASHLIB_GIL_MINSIZE (2048): the hash runs without the GIL


def sleeper(n):
    for _ in range(n):
        time.sleep(0)


def reader(n):
    r, w = os.pipe()
    try:
        for _ in range(n):
            os.write(w, b"ab")
            os.read(r, 2)
    finally:
        os.close(r)
        os.close(w)


def hasher(n):
    for _ in range(n):
        hashlib.sha256(BUF).digest()
        hashlib.md5(BUF).digest()


def main():
    threads = [threading.Thread(target=f, args=(N,)) for f in (sleeper, reader, hasher, reader)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("%.6f" % (time.perf_counter() - t0))


if __name__ == "__main__":
    main()

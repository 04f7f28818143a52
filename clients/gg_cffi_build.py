"""cffi out-of-line API-mode module for the real-client suite (clients/README.md).

usage: python gg_cffi_build.py OUT.c   -- writes the C source of module _gg_cffi (compiled by the
runner with this CPython's headers).

C pthreads call the `extern "Python"` callback gg_cb(kind):
  kind 0 ("a" threads): a plain callback from a foreign thread (PyGILState_Ensure, kept alive).
  kind 1 ("b" threads): the Python side calls lib.gg_foreign(), a C function called with the
         GIL released by cffi, which calls gg_cb(2) nested (a callback during a foreign call).
gg_stop() joins, called from Python with the GIL released by cffi.
gg_block(ms): blocks ms (nanosleep); cffi releases the GIL around the call (variant daemon:
Python daemon threads call it in a loop while the main thread returns).
"""
import sys
import cffi

ffi = cffi.FFI()
ffi.cdef("""
extern "Python" void gg_cb(int);
int gg_start(int n);
void gg_stop(void);
void gg_foreign(void);
int gg_started(void);
int gg_finished(void);
long gg_calls(void);
void gg_block(int ms);
""")
ffi.set_source("_gg_cffi", r"""
#include <pthread.h>
#include <time.h>
static void gg_cb(int);  /* defined by cffi below */
static int gg_stop_flag, gg_started_n, gg_finished_n;
static long gg_calls_n;
static pthread_t gg_threads[256];
static int gg_nthreads;

static void *gg_worker(void *arg) {
    int kind = (int)(long)arg;
    __atomic_fetch_add(&gg_started_n, 1, __ATOMIC_RELAXED);
    while (!__atomic_load_n(&gg_stop_flag, __ATOMIC_ACQUIRE)) {
        gg_cb(kind);
        __atomic_fetch_add(&gg_calls_n, 1, __ATOMIC_RELAXED);
    }
    __atomic_fetch_add(&gg_finished_n, 1, __ATOMIC_RELAXED);
    return NULL;
}
static int gg_start(int n) {
    __atomic_store_n(&gg_stop_flag, 0, __ATOMIC_RELEASE);
    for (int i = 0; i < n && gg_nthreads + 2 <= 256; i++) {
        pthread_create(&gg_threads[gg_nthreads++], NULL, gg_worker, (void *)0L);
        pthread_create(&gg_threads[gg_nthreads++], NULL, gg_worker, (void *)1L);
    }
    return gg_nthreads;
}
static void gg_stop(void) {
    __atomic_store_n(&gg_stop_flag, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < gg_nthreads; i++) pthread_join(gg_threads[i], NULL);
    gg_nthreads = 0;
}
static void gg_foreign(void) { gg_cb(2); }
static int gg_started(void) { return __atomic_load_n(&gg_started_n, __ATOMIC_RELAXED); }
static int gg_finished(void) { return __atomic_load_n(&gg_finished_n, __ATOMIC_RELAXED); }
static long gg_calls(void) { return __atomic_load_n(&gg_calls_n, __ATOMIC_RELAXED); }
static void gg_block(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
""")

if __name__ == "__main__":
    ffi.emit_c_code(sys.argv[1])

/* Plain C library (no Python headers) for the ctypes client (clients/README.md).
 * gg_start(n, cb): n "a" pthreads call cb(0) in a loop (a ctypes callback from a foreign
 * thread: PyGILState_Ensure/Release); n "b" pthreads call cb(1), whose Python side calls
 * gg_foreign(2) through ctypes (GIL released around the foreign call), which calls cb(2)
 * nested. gg_stop() joins (ctypes releases the GIL around it).
 * gg_block(ms): blocks ms (nanosleep); ctypes (CDLL) releases the GIL around the call (variant
 * daemon: Python daemon threads call it in a loop while the main thread returns). */
#include <pthread.h>
#include <time.h>

typedef void (*gg_cb_t)(int);
static gg_cb_t gg_cb;
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

int gg_start(int n, gg_cb_t cb) {
    gg_cb = cb;
    __atomic_store_n(&gg_stop_flag, 0, __ATOMIC_RELEASE);
    for (int i = 0; i < n && gg_nthreads + 2 <= 256; i++) {
        pthread_create(&gg_threads[gg_nthreads++], NULL, gg_worker, (void *)0L);
        pthread_create(&gg_threads[gg_nthreads++], NULL, gg_worker, (void *)1L);
    }
    return gg_nthreads;
}
void gg_stop(void) {
    __atomic_store_n(&gg_stop_flag, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < gg_nthreads; i++) pthread_join(gg_threads[i], NULL);
    gg_nthreads = 0;
}
void gg_foreign(int kind) { gg_cb(kind); }
int gg_started(void) { return __atomic_load_n(&gg_started_n, __ATOMIC_RELAXED); }
int gg_finished(void) { return __atomic_load_n(&gg_finished_n, __ATOMIC_RELAXED); }
long gg_calls(void) { return __atomic_load_n(&gg_calls_n, __ATOMIC_RELAXED); }
void gg_block(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

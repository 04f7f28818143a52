# cython: language_level=3
# A Cython extension whose own C threads call into Python through gilgate's C API, declared by
# include/gilgate.pxd (`from gilgate cimport ...`), in nogil code. Run by
# harness/tests/cython_gilgate.rs: the program exits with the threads still calling in, so they
# meet finalization and must get gilgate's errors.
#
# start(n, callback): n "a" and n "b" pthreads, each looping until a gilgate call fails:
#   a: lock the host mutex; gilgate_gilstate_ensure; callback (a `with gil` function: nested,
#      the GIL is already held); gilgate_gilstate_release; unlock.
#   b: gilgate_gilstate_ensure; callback; gilgate_save_thread (GIL released inside the region)
#      while locking the host mutex; gilgate_restore_thread; callback; unlock; release.
# A C atexit handler (registered by start(), so it runs after Py_FinalizeEx returned) waits for
# every worker to end, takes the host mutex (a vanished worker that held it: hang, reported by
# the harness's watchdog), prints
#   RESULT started=N finished=N vanished=N ok=N finalizing=N notinit=N other=N
# and _exits 0 only if every worker ended with FINALIZING or NOT_INITIALIZED and none vanished.

from gilgate cimport (gilgate_status, gilgate_gilstate_ensure, gilgate_gilstate_release,
                      gilgate_save_thread, gilgate_restore_thread, GILGATE_OK,
                      GILGATE_ERR_FINALIZING, GILGATE_ERR_NOT_INITIALIZED)
from cpython.pystate cimport PyThreadState

cdef extern from *:
    """
    #include <pthread.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include <unistd.h>
    static pthread_mutex_t gg_host = PTHREAD_MUTEX_INITIALIZER;
    static pthread_t gg_th[64];
    static int gg_n, gg_started, gg_finished, gg_fin, gg_notinit, gg_other, gg_ready;
    static long gg_ok;
    #define GG_LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
    #define GG_INC(x) __atomic_fetch_add(&(x), 1, __ATOMIC_ACQ_REL)
    static void gg_lock(void) { pthread_mutex_lock(&gg_host); }
    static void gg_unlock(void) { pthread_mutex_unlock(&gg_host); }
    static void gg_inc_ok(void) { GG_INC(gg_ok); }
    static void gg_mark_ready(void) { GG_INC(gg_ready); }
    static int gg_get_ready(void) { return GG_LOAD(gg_ready); }
    static void gg_end(int st, int fin, int notinit) {
        if (st == fin) GG_INC(gg_fin); else if (st == notinit) GG_INC(gg_notinit); else GG_INC(gg_other);
        GG_INC(gg_finished);
    }
    static void gg_report(void) {
        for (int i = 0; i < 1000 && GG_LOAD(gg_finished) < GG_LOAD(gg_started); i++) usleep(10000);
        pthread_mutex_lock(&gg_host);
        pthread_mutex_unlock(&gg_host);
        int started = GG_LOAD(gg_started), finished = GG_LOAD(gg_finished);
        int vanished = started - finished;
        printf("RESULT started=%d finished=%d vanished=%d ok=%ld finalizing=%d notinit=%d other=%d\\n",
               started, finished, vanished, GG_LOAD(gg_ok), gg_fin, gg_notinit, gg_other);
        fflush(stdout);
        _exit(vanished || gg_other || GG_LOAD(gg_ok) == 0 || gg_fin + gg_notinit != started ? 3 : 0);
    }
    static int gg_spawn(void *(*fn)(void *)) {
        if (gg_n == 0) atexit(gg_report);
        if (gg_n >= 64) return -1;
        GG_INC(gg_started);
        return pthread_create(&gg_th[gg_n++], NULL, fn, NULL);
    }
    """
    ctypedef void *(*gg_fn)(void *) noexcept nogil
    void gg_lock() nogil
    void gg_unlock() nogil
    void gg_inc_ok() nogil
    void gg_mark_ready() nogil
    int gg_get_ready() nogil
    void gg_end(int st, int fin, int notinit) nogil
    int gg_spawn(gg_fn fn) nogil

cdef object _callback = None


cdef void call_cb() noexcept with gil:
    # Nested: the thread already holds the GIL through gilgate.
    _callback()
    gg_inc_ok()


cdef void *worker_a(void *arg) noexcept nogil:
    cdef int st
    cdef gilgate_status rc
    cdef int first = 1
    while True:
        gg_lock()
        rc = gilgate_gilstate_ensure(&st)
        if rc != GILGATE_OK:
            gg_unlock()
            gg_end(rc, GILGATE_ERR_FINALIZING, GILGATE_ERR_NOT_INITIALIZED)
            return NULL
        call_cb()
        gilgate_gilstate_release(st)
        gg_unlock()
        if first:
            first = 0
            gg_mark_ready()


cdef void *worker_b(void *arg) noexcept nogil:
    cdef int st
    cdef gilgate_status rc
    cdef PyThreadState *ts
    cdef int first = 1
    while True:
        rc = gilgate_gilstate_ensure(&st)
        if rc != GILGATE_OK:
            gg_end(rc, GILGATE_ERR_FINALIZING, GILGATE_ERR_NOT_INITIALIZED)
            return NULL
        call_cb()
        ts = gilgate_save_thread()       # Py_BEGIN_ALLOW_THREADS inside the region
        gg_lock()
        rc = gilgate_restore_thread(ts)  # fallible Py_END_ALLOW_THREADS
        if rc != GILGATE_OK:
            gg_unlock()
            gilgate_gilstate_release(st)  # gilgate skips what CPython must not see
            gg_end(rc, GILGATE_ERR_FINALIZING, GILGATE_ERR_NOT_INITIALIZED)
            return NULL
        call_cb()                         # GIL and host mutex held
        gg_unlock()
        gilgate_gilstate_release(st)
        if first:
            first = 0
            gg_mark_ready()


def start(int n, callback):
    global _callback
    _callback = callback
    for i in range(n):
        gg_spawn(worker_a)
        gg_spawn(worker_b)


def ready():
    """How many workers completed a call."""
    return gg_get_ready()

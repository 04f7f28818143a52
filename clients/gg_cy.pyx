# cython: language_level=3
# Cython extension module for the real-client suite (clients/README.md).
#
# start(n, callback): n "a" pthreads and n "b" pthreads.
#   a: loop calling call_cb(), a `cdef void ... noexcept with gil` function (PyGILState_Ensure /
#      PyGILState_Release, Cython's fast-GIL path where it applies).
#   b: one `with gil:` block for the thread's life; inside it loops calling locked_step(), a
#      `cdef void ... noexcept nogil` function that releases the GIL with a `with nogil:` block
#      while blocking on a host mutex (Cython >= 3.2 on CPython >= 3.13 compiles this to
#      PyThreadState_Swap(NULL) ... PyEval_RestoreThread), takes the GIL back holding the
#      mutex, calls call_cb(), unlocks.
# stop(): sets the flag and joins with the GIL released. counts(): (started, finished, calls).

cdef extern from *:
    """
    #include <pthread.h>
    static int gg_stop_flag, gg_started_n, gg_finished_n;
    static long gg_calls_n;
    static pthread_mutex_t gg_host_mutex = PTHREAD_MUTEX_INITIALIZER;
    static pthread_t gg_threads[256];
    static int gg_nthreads;
    static int gg_should_stop(void) { return __atomic_load_n(&gg_stop_flag, __ATOMIC_ACQUIRE); }
    static void gg_set_stop(int v) { __atomic_store_n(&gg_stop_flag, v, __ATOMIC_RELEASE); }
    static void gg_inc_started(void) { __atomic_fetch_add(&gg_started_n, 1, __ATOMIC_RELAXED); }
    static void gg_inc_finished(void) { __atomic_fetch_add(&gg_finished_n, 1, __ATOMIC_RELAXED); }
    static void gg_inc_calls(void) { __atomic_fetch_add(&gg_calls_n, 1, __ATOMIC_RELAXED); }
    static int gg_get_started(void) { return __atomic_load_n(&gg_started_n, __ATOMIC_RELAXED); }
    static int gg_get_finished(void) { return __atomic_load_n(&gg_finished_n, __ATOMIC_RELAXED); }
    static long gg_get_calls(void) { return __atomic_load_n(&gg_calls_n, __ATOMIC_RELAXED); }
    static void gg_lock(void) { pthread_mutex_lock(&gg_host_mutex); }
    static void gg_unlock(void) { pthread_mutex_unlock(&gg_host_mutex); }
    static int gg_spawn(void *(*fn)(void *)) {
        if (gg_nthreads >= 256) return -1;
        return pthread_create(&gg_threads[gg_nthreads++], NULL, fn, NULL);
    }
    static void gg_join_all(void) {
        for (int i = 0; i < gg_nthreads; i++) pthread_join(gg_threads[i], NULL);
        gg_nthreads = 0;
    }
    """
    ctypedef void *(*gg_fn)(void *) noexcept nogil
    int gg_should_stop() nogil
    void gg_set_stop(int) nogil
    void gg_inc_started() nogil
    void gg_inc_finished() nogil
    void gg_inc_calls() nogil
    int gg_get_started() nogil
    int gg_get_finished() nogil
    long gg_get_calls() nogil
    void gg_lock() nogil
    void gg_unlock() nogil
    int gg_spawn(gg_fn fn) nogil
    void gg_join_all() nogil

cdef object _callback = None


cdef void call_cb() noexcept with gil:
    _callback()
    gg_inc_calls()


cdef void *worker_a(void *arg) noexcept nogil:
    gg_inc_started()
    while not gg_should_stop():
        call_cb()
    gg_inc_finished()
    return NULL


cdef void locked_step() noexcept nogil:
    # Called with the GIL held: this `with nogil` is the "unknown state" form.
    with nogil:
        gg_lock()
    call_cb()
    gg_unlock()


cdef void *worker_b(void *arg) noexcept nogil:
    gg_inc_started()
    with gil:
        while not gg_should_stop():
            locked_step()
    gg_inc_finished()
    return NULL


def start(int n, callback):
    global _callback
    _callback = callback
    gg_set_stop(0)
    for i in range(n):
        gg_spawn(worker_a)
        gg_spawn(worker_b)


def stop():
    gg_set_stop(1)
    with nogil:
        gg_join_all()


def counts():
    return (gg_get_started(), gg_get_finished(), gg_get_calls())

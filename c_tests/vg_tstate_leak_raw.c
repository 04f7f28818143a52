/* vg_tstate_leak_raw.c: CPython alone (no gilgate), for docs/valgrind.md. A worker thread takes
 * a gilstate level (PyGILState_Ensure: CPython allocates a fresh thread state for it), releases
 * the GIL inside it (PyEval_SaveThread, as Py_BEGIN_ALLOW_THREADS), and is still inside that
 * level when the main thread calls Py_FinalizeEx; after finalization it exits without touching
 * Python again (it may not: the runtime is gone). Under memcheck, on CPython 3.14+, the worker's
 * thread state is "definitely lost": alloc_threadstate <- new_threadstate <- PyGILState_Ensure.
 * api_edges.c's nested_worker does the same through gilgate_gilstate_ensure.
 *   cc $(python3.14d-config --includes) vg_tstate_leak_raw.c $(python3.14d-config --ldflags --embed) */
#include <Python.h>
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase;

static void set_phase(int p) { pthread_mutex_lock(&m); phase = p; pthread_cond_broadcast(&cv); pthread_mutex_unlock(&m); }
static void wait_phase(int p) { pthread_mutex_lock(&m); while (phase < p) pthread_cond_wait(&cv, &m); pthread_mutex_unlock(&m); }

static void *worker(void *arg) {
    (void)arg;
    PyGILState_STATE s = PyGILState_Ensure();
    (void)s;
    PyThreadState *ts = PyEval_SaveThread();
    (void)ts;
    set_phase(1);
    wait_phase(2); /* the runtime was finalized meanwhile: never touch ts or s again */
    return NULL;
}

int main(void) {
    Py_Initialize();
    PyThreadState *main_ts = PyEval_SaveThread();
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    wait_phase(1);
    PyEval_RestoreThread(main_ts);
    int r = Py_FinalizeEx();
    set_phase(2);
    pthread_join(t, NULL);
    printf("RESULT finalize=%d\n", r);
    return r < 0;
}

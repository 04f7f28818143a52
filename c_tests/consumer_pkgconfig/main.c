/* A C99 embedding host built against an installed gilgate via pkg-config (see packaging_test.sh):
 *
 *   cc -std=c99 main.c $(pkg-config --cflags --libs gilgate) \
 *      $(python3.X-config --includes) $(python3.X-config --ldflags --embed) -lpthread -Wl,-rpath,...
 *
 * A worker thread calls into Python through gilgate_gilstate_ensure while the main thread
 * finalizes with gilgate_finalize; the worker must then get GILGATE_ERR_FINALIZING or
 * GILGATE_ERR_NOT_INITIALIZED and return normally. Prints `consumer_pkgconfig: PASS ...` and
 * exits 0 only if every check holds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilgate.h>

#include <pthread.h>
#include <stdio.h>
#include <time.h>

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static long g_calls;
static int g_exit_status = -1, g_done, g_finalize_returned, g_failures;
static PyObject *g_work; /* used only while the GIL is held through gilgate */

static int get(int *p) {
    int v;
    pthread_mutex_lock(&g_lock);
    v = *p;
    pthread_mutex_unlock(&g_lock);
    return v;
}
static long calls(void) {
    long v;
    pthread_mutex_lock(&g_lock);
    v = g_calls;
    pthread_mutex_unlock(&g_lock);
    return v;
}
static void fail(const char *what, long detail) {
    fprintf(stderr, "consumer_pkgconfig: check failed: %s (%ld)\n", what, detail);
    pthread_mutex_lock(&g_lock);
    g_failures++;
    pthread_mutex_unlock(&g_lock);
}
static void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

static void *worker(void *arg) {
    long i;
    (void)arg;
    for (i = 0;; i++) {
        int state;
        long n = 50 + i % 200, v;
        PyObject *r;
        gilgate_status st = gilgate_gilstate_ensure(&state);
        if (st != GILGATE_OK) {
            pthread_mutex_lock(&g_lock);
            g_exit_status = (int)st;
            pthread_mutex_unlock(&g_lock);
            break; /* nothing is held, nothing to release */
        }
        if (get(&g_finalize_returned)) fail("entry succeeded after gilgate_finalize returned", i);
        r = PyObject_CallFunction(g_work, "l", n);
        v = r ? PyLong_AsLong(r) : -1;
        Py_XDECREF(r);
        if (v != n * (n - 1) / 2) fail("work() returned a wrong result", v);
        gilgate_gilstate_release(state);
        pthread_mutex_lock(&g_lock);
        g_calls++;
        pthread_mutex_unlock(&g_lock);
    }
    pthread_mutex_lock(&g_lock);
    g_done = 1;
    pthread_mutex_unlock(&g_lock);
    return NULL;
}

int main(void) {
    PyObject *d, *r;
    PyThreadState *main_ts;
    pthread_t th;
    gilgate_status st;
    int py_rc = -1, waited, failures;

    Py_InitializeEx(0);
    d = PyModule_GetDict(PyImport_AddModule("__main__"));
    r = PyRun_String("def work(n):\n    return sum(range(n))\n", Py_file_input, d, d);
    if (!r) {
        PyErr_Print();
        return 70;
    }
    Py_DECREF(r);
    g_work = PyDict_GetItemString(d, "work"); /* borrowed: __main__ keeps it alive */

    main_ts = gilgate_save_thread(); /* Py_BEGIN_ALLOW_THREADS */
    if (!main_ts) fail("gilgate_save_thread returned NULL", 0);
    if (pthread_create(&th, NULL, worker, NULL) != 0) return 71;
    for (waited = 0; calls() < 25 && !get(&g_done) && waited < 10000; waited++) sleep_ms(1);
    if (calls() < 25) fail("worker did not get going", calls());

    st = gilgate_restore_thread(main_ts); /* Py_END_ALLOW_THREADS, fallible */
    if (st != GILGATE_OK) {
        fprintf(stderr, "consumer_pkgconfig: FAIL restore: %s\n", gilgate_status_str(st));
        return 72;
    }
    st = gilgate_finalize(&py_rc); /* the worker keeps calling meanwhile */
    pthread_mutex_lock(&g_lock);
    g_finalize_returned = 1;
    pthread_mutex_unlock(&g_lock);
    if (st != GILGATE_OK) fail("gilgate_finalize", st);
    if (py_rc != 0) fail("Py_FinalizeEx", py_rc);

    for (waited = 0; !get(&g_done) && waited < 10000; waited++) sleep_ms(1);
    if (!get(&g_done)) {
        printf("consumer_pkgconfig: FAIL the worker did not come back after finalization\n");
        return 4; /* vanished or hung: cannot join */
    }
    pthread_join(th, NULL);
    if (g_exit_status != GILGATE_ERR_FINALIZING && g_exit_status != GILGATE_ERR_NOT_INITIALIZED)
        fail("worker exit status", g_exit_status);
    {
        int state;
        st = gilgate_gilstate_ensure(&state);
        if (st == GILGATE_OK) {
            fail("gilgate_gilstate_ensure succeeded after finalization", 0);
            gilgate_gilstate_release(state);
        } else if (st != GILGATE_ERR_NOT_INITIALIZED) {
            fail("status after finalization", st);
        }
    }
    failures = get(&g_failures);
    printf("consumer_pkgconfig: %s gilgate=%s calls=%ld worker_exit=%s\n", failures ? "FAIL" : "PASS",
           gilgate_version(), calls(), gilgate_status_str((gilgate_status)g_exit_status));
    return failures ? 1 : 0;
}

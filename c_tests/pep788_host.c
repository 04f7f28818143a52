/* gilgate's gilstate path on every CPython, and which path it took (harness/tests/pep788.rs).
 *
 * 1. From a fresh thread: gilgate_gilstate_ensure, nested once, then 12 levels deep (nested in
 *    the thread's own attached thread state: PyGILState_Ensure levels on every version), all
 *    released LIFO; then 12 levels each opened inside the previous one's gilgate_save_thread
 *    (past gilgate's 8 PEP 788 levels the rest go through PyGILState_Ensure).
 *    Also a level opened inside another whose GIL was released with gilgate_save_thread.
 *    Prints the state values (CPython's: UNLOCKED on a fresh thread, LOCKED nested) and the
 *    main interpreter's PEP 788 guard countdown inside the outer level, read through
 *    _PyInterpreterState_GuardCountdown where this CPython exports it (3.15+): 1 there means
 *    gilgate's entry holds a guard (the PEP 788 path); 0, or no such symbol, the legacy path.
 * 2. A laggard: a worker enters, releases the GIL (gilgate_save_thread) inside its gilstate level
 *    and waits for the main thread to finish finalizing. The main thread finalizes from inside
 *    its own gilstate level with a 300 ms drain timeout: Py_FinalizeEx must wait for neither
 *    (on 3.15 both hold a guard that would make it wait forever). The worker's restore is then
 *    refused and its release ignored.
 * 3. A second runtime (Py_Initialize again): the same probe works (cached view, new generation).
 * Prints lines "PROBE ...", "FINALIZE ms=N", "LAGGARD restore=STATUS", then "DONE" (exit 0),
 * or "FAIL: why" (exit 1).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "gilgate.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef Py_ssize_t (*countdown_fn)(PyInterpreterState *);
static countdown_fn g_countdown;
static PyInterpreterState *g_main;

static long countdown(void) { return g_countdown ? (long)g_countdown(g_main) : -1; }

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

#define FAIL(...) do { printf("FAIL: "); printf(__VA_ARGS__); printf("\n"); fflush(stdout); exit(1); } while (0)

static void *probe(void *arg) {
    (void)arg;
    int s1, s2;
    if (gilgate_gilstate_ensure(&s1) != GILGATE_OK) FAIL("probe: outer ensure refused");
    if (!PyGILState_Check()) FAIL("probe: outer ensure OK without the GIL");
    long cd1 = countdown();
    if (gilgate_gilstate_ensure(&s2) != GILGATE_OK) FAIL("probe: nested ensure refused");
    long cd2 = countdown();
    gilgate_gilstate_release(s2);
    if (!PyGILState_Check()) FAIL("probe: inner release dropped the GIL");
    gilgate_gilstate_release(s1);
    if (PyGILState_Check()) FAIL("probe: outer release kept the GIL");
    printf("PROBE state_outer=%d state_nested=%d countdown=%ld/%ld path=%s\n", s1, s2, cd1, cd2,
           cd1 > 0 ? "pep788" : "legacy");
    /* A level opened while an outer one has released the GIL (gilgate_save_thread), as a
     * callback inside Py_BEGIN_ALLOW_THREADS would. */
    int o, i2;
    if (gilgate_gilstate_ensure(&o) != GILGATE_OK) FAIL("probe: outer (save pattern) refused");
    PyThreadState *saved = gilgate_save_thread();
    if (!saved || PyGILState_Check()) FAIL("probe: save inside a level");
    if (gilgate_gilstate_ensure(&i2) != GILGATE_OK) FAIL("probe: level inside a saved level refused");
    if (!PyGILState_Check()) FAIL("probe: level inside a saved level without the GIL");
    gilgate_gilstate_release(i2);
    if (PyGILState_Check()) FAIL("probe: release inside a saved level kept the GIL");
    if (gilgate_restore_thread(saved) != GILGATE_OK) FAIL("probe: restore inside a level refused");
    gilgate_gilstate_release(o);
    if (PyGILState_Check()) FAIL("probe: outer release (save pattern) kept the GIL");
    printf("PROBESAVE states=%d,%d countdown_after=%ld\n", o, i2, countdown());
    /* 12 levels, LIFO. */
    int st[12];
    for (int i = 0; i < 12; i++) {
        if (gilgate_gilstate_ensure(&st[i]) != GILGATE_OK) FAIL("probe: level %d refused", i);
        if (!PyGILState_Check()) FAIL("probe: level %d without the GIL", i);
    }
    long cd12 = countdown();
    for (int i = 11; i >= 0; i--) {
        gilgate_gilstate_release(st[i]);
        if (i > 0 && !PyGILState_Check()) FAIL("probe: release of level %d dropped the GIL", i);
    }
    if (PyGILState_Check()) FAIL("probe: the GIL is still held after 12 releases");
    printf("PROBE12 countdown=%ld states=%d,%d,%d\n", cd12, st[0], st[1], st[11]);
    /* 12 levels each opened with the GIL released by the one around it (ensure, save, ensure,
     * save, ...; then restore, release, ...): past gilgate's 8 PEP 788 levels the rest are
     * PyGILState_Ensure levels at the same gate depth, and each release must find its own. */
    int sv[12];
    PyThreadState *ts[12];
    for (int i = 0; i < 12; i++) {
        if (gilgate_gilstate_ensure(&sv[i]) != GILGATE_OK) FAIL("probe: saved chain level %d refused", i);
        if (!PyGILState_Check()) FAIL("probe: saved chain level %d without the GIL", i);
        ts[i] = gilgate_save_thread();
        if (!ts[i]) FAIL("probe: saved chain save %d", i);
    }
    long cdchain = countdown();
    for (int i = 11; i >= 0; i--) {
        if (gilgate_restore_thread(ts[i]) != GILGATE_OK) FAIL("probe: saved chain restore %d refused", i);
        gilgate_gilstate_release(sv[i]);
        if (PyGILState_Check()) FAIL("probe: saved chain release %d kept the GIL", i);
    }
    printf("PROBECHAIN countdown=%ld states=%d,%d\n", cdchain, sv[0], sv[11]);
    return NULL;
}

static void run_probe(void) {
    PyThreadState *ts = PyEval_SaveThread();
    pthread_t t;
    pthread_create(&t, NULL, probe, NULL);
    pthread_join(t, NULL);
    PyEval_RestoreThread(ts);
    /* gilgate keeps one guard per thread and runtime generation once its drain is armed (closed
     * by the drain, before Py_FinalizeEx waits for guards: FINALIZE below stays bounded); the
     * probe thread's is the only one left. */
    long kept = countdown();
    printf("PROBEKEPT countdown=%ld\n", kept);
    if (kept > 1) FAIL("more guards held after the probe than the probe thread's kept one (countdown %ld)", kept);
}

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_inside, g_finalized;
static gilgate_status g_restore = GILGATE_OK;

static void *laggard(void *arg) {
    (void)arg;
    int s;
    if (gilgate_gilstate_ensure(&s) != GILGATE_OK) FAIL("laggard: ensure refused");
    PyThreadState *ts = gilgate_save_thread();
    pthread_mutex_lock(&g_mu);
    g_inside = 1;
    pthread_cond_broadcast(&g_cv);
    while (!g_finalized) pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    g_restore = gilgate_restore_thread(ts);
    if (g_restore == GILGATE_OK) gilgate_save_thread();
    gilgate_gilstate_release(s); /* after finalization: ignored, never reaches CPython */
    return NULL;
}

int main(void) {
    g_countdown = (countdown_fn)dlsym(RTLD_DEFAULT, "_PyInterpreterState_GuardCountdown");
    Py_Initialize();
    g_main = PyInterpreterState_Main();
    run_probe();

    gilgate_set_drain_timeout_ms(300);
    pthread_t t;
    pthread_create(&t, NULL, laggard, NULL);
    PyThreadState *ts = PyEval_SaveThread();
    pthread_mutex_lock(&g_mu);
    while (!g_inside) pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    PyEval_RestoreThread(ts);
    int ms;
    if (gilgate_gilstate_ensure(&ms) != GILGATE_OK) FAIL("main: ensure refused");
    long cd = countdown();
    double t0 = now_ms();
    int r = -1;
    if (gilgate_finalize(&r) != GILGATE_OK) FAIL("main: gilgate_finalize refused");
    printf("FINALIZE ms=%.0f py=%d countdown_before=%ld\n", now_ms() - t0, r, cd);
    gilgate_gilstate_release(ms); /* the runtime is gone: ignored */
    pthread_mutex_lock(&g_mu);
    g_finalized = 1;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    pthread_join(t, NULL);
    printf("LAGGARD restore=%s\n", gilgate_status_str(g_restore));
    if (g_restore == GILGATE_OK) FAIL("laggard restored after finalization");

    Py_Initialize();
    g_main = PyInterpreterState_Main();
    run_probe();
    if (gilgate_finalize(&r) != GILGATE_OK) FAIL("second gilgate_finalize refused");
    printf("DONE\n");
    return 0;
}

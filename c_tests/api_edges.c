/* Calls before Py_Initialize, after Py_FinalizeEx, NULL arguments, misuse, and three
 * init/finalize cycles in one process (generations). Exits 0 only if every check holds;
 * prints each failed check. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "gilgate.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static int failures, checks;
#define CHECK(cond) do { checks++; if (!(cond)) { failures++; \
    fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define EXPECT(call, want) do { int got_ = (call); checks++; if (got_ != (want)) { failures++; \
    fprintf(stderr, "FAILED %s:%d: %s = %s, want %s\n", __FILE__, __LINE__, #call, \
            gilgate_status_str(got_), gilgate_status_str(want)); } } while (0)

static void *refused_worker(void *arg) {
    int st, want = (int)(long)arg;
    EXPECT(gilgate_gilstate_ensure(&st), want);
    gilgate_gilstate_release(0); /* release without ensure: ignored, no crash */
    return NULL;
}

static void *ok_worker(void *arg) {
    (void)arg;
    int st;
    EXPECT(gilgate_gilstate_ensure(&st), GILGATE_OK);
    if (st == 0 || st == 1) {
        CHECK(PyGILState_Check());
        PyObject *r = PyRun_String("sum(range(100))", Py_eval_input, PyEval_GetBuiltins(), NULL);
        CHECK(r && PyLong_AsLong(r) == 4950);
        Py_XDECREF(r);
        struct gilgate_stats gs;                   /* this thread is inside a gated region */
        EXPECT(gilgate_stats(&gs), GILGATE_OK);
        CHECK(gs.open_regions >= 1);
        gilgate_gilstate_release(st);
    }
    return NULL;
}

/* Nested regions whose inner re-entry is refused: the outer releases must not reach CPython
 * (PyGILState_Release without the GIL is a fatal error). */
static pthread_mutex_t g_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_phase;
static void set_phase(int p) { pthread_mutex_lock(&g_m); g_phase = p; pthread_cond_broadcast(&g_cv); pthread_mutex_unlock(&g_m); }
static void wait_phase(int p) { pthread_mutex_lock(&g_m); while (g_phase < p) pthread_cond_wait(&g_cv, &g_m); pthread_mutex_unlock(&g_m); }

static void *nested_worker(void *arg) {
    (void)arg;
    int s1, s2;
    EXPECT(gilgate_gilstate_ensure(&s1), GILGATE_OK);
    EXPECT(gilgate_gilstate_ensure(&s2), GILGATE_OK);
    PyThreadState *ts = gilgate_save_thread();   /* like Py_BEGIN_ALLOW_THREADS */
    CHECK(ts != NULL);
    set_phase(1);
    wait_phase(2);                                 /* main finalized meanwhile */
    EXPECT(gilgate_restore_thread(ts), GILGATE_ERR_NOT_INITIALIZED);
    gilgate_gilstate_release(s2);                  /* must not call CPython */
    gilgate_gilstate_release(s1);
    EXPECT(gilgate_gilstate_ensure(&s1), GILGATE_ERR_NOT_INITIALIZED);
    return NULL;
}

/* A PyThreadState of no interpreter of this runtime (as from a second CPython runtime in the
 * process): `interp` is the third pointer of struct _ts in every CPython 3.8-3.15. */
static void *g_fake_interp[64];
static void *g_fake_tstate[64] = {0, 0, g_fake_interp};
static void *fake_tstate_worker(void *arg) {
    (void)arg;
    EXPECT(gilgate_restore_thread((PyThreadState *)g_fake_tstate), GILGATE_ERR_INVALID_ARGUMENT);
    EXPECT(gilgate_acquire_thread((PyThreadState *)g_fake_tstate), GILGATE_ERR_INVALID_ARGUMENT);
    /* Nothing was taken: the thread can enter normally (PyGILState_Check cannot tell here: a
     * subinterpreter was created, which disables it). */
    int st;
    EXPECT(gilgate_gilstate_ensure(&st), GILGATE_OK);
    gilgate_gilstate_release(st);
    return NULL;
}

static void run_thread(void *(*f)(void *), long arg) {
    pthread_t t;
    pthread_create(&t, NULL, f, (void *)arg);
    pthread_join(t, NULL);
}

int main(void) {
    int st = -1, rc = -1;
    CHECK(gilgate_version() && strlen(gilgate_version()) > 0);
    CHECK(gilgate_status_str((gilgate_status)999) != NULL);
    CHECK(strstr(gilgate_status_str(GILGATE_ERR_FINALIZING), "FINALIZING") != NULL);

    /* Before Py_Initialize. */
    EXPECT(gilgate_runtime_status(), GILGATE_ERR_NOT_INITIALIZED);
    EXPECT(gilgate_gilstate_ensure(&st), GILGATE_ERR_NOT_INITIALIZED);
    EXPECT(gilgate_gilstate_ensure(NULL), GILGATE_ERR_NULL_ARGUMENT);
    EXPECT(gilgate_restore_thread(NULL), GILGATE_ERR_NULL_ARGUMENT);
    EXPECT(gilgate_acquire_thread(NULL), GILGATE_ERR_NULL_ARGUMENT);
    EXPECT(gilgate_finalize(&rc), GILGATE_ERR_NOT_INITIALIZED);
    CHECK(gilgate_save_thread() == NULL);
    gilgate_release_thread(NULL);
    gilgate_gilstate_release(0);
    EXPECT(gilgate_stats(NULL), GILGATE_ERR_NULL_ARGUMENT);
    EXPECT(gilgate_set_policy(42), GILGATE_ERR_INVALID_ARGUMENT);
    EXPECT(gilgate_set_policy(GILGATE_POLICY_ABORT), GILGATE_OK);
    run_thread(refused_worker, GILGATE_ERR_NOT_INITIALIZED);

    for (int cycle = 0; cycle < 3; cycle++) {
        Py_InitializeEx(0);
        EXPECT(gilgate_runtime_status(), GILGATE_OK);
        /* A live subinterpreter's thread state is accepted (CPython's semantics). */
        PyThreadState *main_ts = PyThreadState_Get();
        PyThreadState *sub = Py_NewInterpreter();
        CHECK(sub != NULL && sub != main_ts);
        PyThreadState *sts = gilgate_save_thread();
        CHECK(sts == sub);
        EXPECT(gilgate_restore_thread(sts), GILGATE_OK);
        CHECK(PyThreadState_Get() == sub);
        Py_EndInterpreter(sub);
        PyThreadState_Swap(main_ts);
        /* Nested ensure on the main thread, which already holds the GIL. */
        EXPECT(gilgate_gilstate_ensure(&st), GILGATE_OK);
        CHECK(st == PyGILState_LOCKED);
        gilgate_gilstate_release(st);
        PyThreadState *ts = gilgate_save_thread();
        CHECK(ts != NULL);
        run_thread(ok_worker, 0);
        /* A thread state of no live interpreter of this runtime: refused before CPython sees
         * it, on a fresh thread (Rust path) and on this one (C fast path first). */
        run_thread(fake_tstate_worker, 0);
        fake_tstate_worker(NULL);
        EXPECT(gilgate_restore_thread(ts), GILGATE_OK);
        CHECK(PyGILState_Check());
        ts = gilgate_save_thread();
        EXPECT(gilgate_acquire_thread(ts), GILGATE_OK);
        gilgate_release_thread(ts);
        EXPECT(gilgate_restore_thread(ts), GILGATE_OK);
        rc = -1;
        EXPECT(gilgate_finalize(&rc), GILGATE_OK);
        CHECK(rc == 0);
        /* After Py_FinalizeEx: nothing touches CPython. */
        EXPECT(gilgate_runtime_status(), GILGATE_ERR_NOT_INITIALIZED);
        EXPECT(gilgate_gilstate_ensure(&st), GILGATE_ERR_NOT_INITIALIZED);
        EXPECT(gilgate_restore_thread(ts), GILGATE_ERR_NOT_INITIALIZED);
        EXPECT(gilgate_finalize(NULL), GILGATE_ERR_NOT_INITIALIZED);
        CHECK(gilgate_save_thread() == NULL);
        gilgate_gilstate_release(0);
        run_thread(refused_worker, GILGATE_ERR_NOT_INITIALIZED);
    }

    /* A worker still inside nested regions (GIL given up) when the runtime finalizes: the drain
     * times out (100 ms), finalization proceeds, the worker's re-entry is refused and its
     * releases do nothing. */
    gilgate_set_drain_timeout_ms(100);
    Py_InitializeEx(0);
    PyThreadState *mts = gilgate_save_thread();
    pthread_t nw;
    pthread_create(&nw, NULL, nested_worker, NULL);
    wait_phase(1);
    EXPECT(gilgate_restore_thread(mts), GILGATE_OK);
    EXPECT(gilgate_finalize(&rc), GILGATE_OK);
    set_phase(2);
    pthread_join(nw, NULL);

    struct gilgate_stats s;
    memset(&s, 0xff, sizeof s);
    EXPECT(gilgate_stats(&s), GILGATE_OK);
    CHECK(s.drains == 4);
    CHECK(s.drain_timeouts == 1);
    CHECK(s.gated_entries >= 3 * 5);
    CHECK(s.refused_not_initialized >= 6);
    CHECK(s.kills_intercepted == 0);
    CHECK(s.open_regions == 0);                    /* every region above was closed */
    printf("RESULT checks=%d failures=%d vanished=0 \n", checks, failures);
    return failures ? 1 : 0;
}

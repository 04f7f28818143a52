/* The seed's host (bpo-42969): worker threads hold a host mutex around every call into Python
 * while the main thread finalizes the interpreter. Built three ways from this one file:
 *   C  (pthread mutex, explicit unlock)            -> a vanished worker leaves its mutex locked
 *   C++ -fno-exceptions (RAII guard, destructor)   -> same: pthread_exit runs no destructor
 *   C++ -fexceptions                               -> the forced unwind unlocks, the thread vanishes
 * and against raw CPython (-DGG_RAW) or through gilgate. The main thread ends every cycle by
 * locking every worker's mutex and waiting for every worker to acknowledge: a vanished or hung
 * worker turns into a deadlock that the harness's watchdog reports.
 *
 * usage: seed_host MODE WORKERS DELAY_US CYCLES SEED
 *   MODE: gilstate | tstate | callback | mixed | nested | subinterp | allowcb
 *     gilstate  ensure / Python work / release
 *     tstate    the worker's own PyThreadState: restore / work / save
 *     callback  Python calls back into the host, which ensures again (nested inside Python)
 *     mixed     workers alternate gilstate, tstate, callback
 *     allowcb   tstate, and the Python work calls back into a host function that waits for a
 *               shared host lock with the GIL released (Py_BEGIN/END_ALLOW_THREADS: CPython's
 *               own names, so gilgate's exports where it is linked ahead) inside the API region
 *     nested    ensure, work, ensure again, work, release the inner, work (time.sleep(0) releases
 *               the GIL inside the outer region), release the outer
 *     subinterp even workers: their own PyThreadState of a subinterpreter (Py_NewInterpreter,
 *               shared GIL) in a restore/work/save loop; odd workers: gilstate in the main
 *               interpreter. At a random time main tells the subinterpreter's workers to stop;
 *               each finishes its region, clears and deletes its thread state under the GIL,
 *               then main ends the subinterpreter with Py_EndInterpreter while the main
 *               interpreter's workers keep calling in, and finally finalizes the runtime.
 *               (Py_EndInterpreter with another thread state of that interpreter alive is
 *               CPython's fatal "not the last thread" on 3.8-3.13 and leaves that thread state
 *               dangling on 3.14+: no host can do it safely, so this host never does.)
 *   SEED_STOP_FIRST=1 in the environment: stop the workers before finalizing (a careful host)
 *   SEED_NO_SLEEP=1: the Python work never releases the GIL itself (no time.sleep)
 * Prints one line: RESULT ok=N finalizing=N notinit=N other=N bad_ok=N vanished=N cycles=N
 *   kills=N hangs=N leaked=N. leaked is gilgate_stats().open_regions read after the last
 *   cycle's workers acknowledged the stop (so none is inside a region) and before they exit:
 *   anything above 0 is a gated region gilgate still counts as open (n/a for -DGG_RAW).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#ifndef GG_RAW
#include "gilgate.h"
#endif
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if PY_VERSION_HEX >= 0x030D0000
#define HOST_IS_FINALIZING() Py_IsFinalizing()
#else
#define HOST_IS_FINALIZING() _Py_IsFinalizing()
#endif

#define MAX_WORKERS 64
enum { M_GILSTATE, M_TSTATE, M_CALLBACK, M_MIXED, M_NESTED, M_SUBINTERP, M_ALLOWCB };
enum { RES_OK, RES_FINALIZING, RES_NOTINIT, RES_OTHER, RES_BAD_OK, RES_N };

static int g_mode, g_workers, g_cycles;
static volatile int g_go, g_stop; /* cycle numbers, written by main */
static volatile int g_sub_stop;   /* subinterp: cycle whose subinterpreter workers must stop */
static volatile int g_exit;       /* set by main after the leak check: workers may exit */
static int g_ready[MAX_WORKERS + 1], g_acked[MAX_WORKERS + 1], g_sub_done[MAX_WORKERS + 1];
static pthread_mutex_t g_host[MAX_WORKERS];
static pthread_mutex_t g_count_lock = PTHREAD_MUTEX_INITIALIZER;
static long g_results[RES_N];
static int g_finished[MAX_WORKERS];
static PyObject *g_work, *g_work_cb, *g_cb, *g_block_cb; /* per cycle, set by main before go */
static PyInterpreterState *g_interp;
static PyInterpreterState *g_sub;  /* subinterp mode: this cycle's subinterpreter */
static PyObject *g_sub_work;        /* its `work`, defined in its own __main__ */

static void count(int r) {
    pthread_mutex_lock(&g_count_lock);
    g_results[r]++;
    pthread_mutex_unlock(&g_count_lock);
}
static int load(volatile int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void store(volatile int *p, int v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static void bump(int *p) { __atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST); }
/* The start signal also passes through a mutex: the host's real ordering (Py_InitializeEx and
 * setup_python before any worker's first call) made visible to valgrind's thread checkers,
 * which cannot see the atomics. Only used while waiting to start, never in the loop. */
static pthread_mutex_t g_go_lock = PTHREAD_MUTEX_INITIALIZER;
static int go_load(void) {
    pthread_mutex_lock(&g_go_lock);
    int v = load(&g_go);
    pthread_mutex_unlock(&g_go_lock);
    return v;
}
static void go_store(int v) {
    pthread_mutex_lock(&g_go_lock);
    store(&g_go, v);
    pthread_mutex_unlock(&g_go_lock);
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

#ifdef __cplusplus
/* The host's RAII lock: with -fno-exceptions, pthread_exit never runs this destructor. */
struct host_lock {
    pthread_mutex_t *m;
    explicit host_lock(pthread_mutex_t *mu) : m(mu) { pthread_mutex_lock(m); }
    ~host_lock() { pthread_mutex_unlock(m); }
};
#define HOST_LOCK(mu) host_lock host_lock_guard_(mu)
#define HOST_UNLOCK(mu) ((void)0)
#else
#define HOST_LOCK(mu) pthread_mutex_lock(mu)
#define HOST_UNLOCK(mu) pthread_mutex_unlock(mu)
#endif

/* After a successful entry the GIL must be held and the runtime must not be finalizing.
 * Once a subinterpreter exists (mode subinterp) CPython disables PyGILState_Check (it returns 1
 * from then on, every version), so there this checks only the finalizing flag. */
static void check_ok(void) {
    if (!PyGILState_Check() || HOST_IS_FINALIZING())
        count(RES_BAD_OK);
    else
        count(RES_OK);
}

#ifndef GG_RAW
/* A failed entry must leave errno as the caller had it (CPython's kill path does not). */
#define ERRNO_MARK 4242
static void check_errno_after_error(void) {
    if (errno != ERRNO_MARK) {
        fprintf(stderr, "errno changed by a failed entry: %d\n", errno);
        count(RES_OTHER);
    }
}
static void count_status(int st) {
    if (st == GILGATE_ERR_FINALIZING) count(RES_FINALIZING);
    else if (st == GILGATE_ERR_NOT_INITIALIZED) count(RES_NOTINIT);
    else count(RES_OTHER);
}
#endif

/* Python calls this back (callback mode): a nested gilstate entry from inside Python. */
static PyObject *host_cb(PyObject *self, PyObject *args) {
    (void)self; (void)args;
#ifdef GG_RAW
    PyGILState_STATE s = PyGILState_Ensure();
    PyGILState_Release(s);
#else
    int s;
    int st = gilgate_gilstate_ensure(&s);
    if (st == GILGATE_OK) gilgate_gilstate_release(s);
    else count_status(st);
#endif
    Py_RETURN_NONE;
}
static PyMethodDef host_cb_def = {"host_cb", host_cb, METH_NOARGS, NULL};

/* allowcb mode: a host function Python calls, blocking on a host lock with the GIL released. */
static pthread_mutex_t g_block = PTHREAD_MUTEX_INITIALIZER;
static PyObject *host_block(PyObject *self, PyObject *args) {
    (void)self; (void)args;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&g_block);
    struct timespec t = {0, 20000};
    nanosleep(&t, NULL);
    pthread_mutex_unlock(&g_block);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}
static PyMethodDef host_block_def = {"host_block", host_block, METH_NOARGS, NULL};

static void python_work(int callback, unsigned *seed) {
    PyObject *r;
    if (callback)
        r = PyObject_CallFunction(g_work_cb, "O", callback == 2 ? g_block_cb : g_cb);
    else
        r = PyObject_CallFunction(g_work, "i", (int)(rand_r(seed) % 200));
    if (r) Py_DECREF(r);
    else PyErr_Clear();
}

static void one_gilstate(int id, int callback, unsigned *seed) {
    HOST_LOCK(&g_host[id]);
#ifdef GG_RAW
    PyGILState_STATE s = PyGILState_Ensure();
    check_ok();
    python_work(callback, seed);
    PyGILState_Release(s);
#else
    int s;
    errno = ERRNO_MARK;
    int st = gilgate_gilstate_ensure(&s);
    if (st == GILGATE_OK) {
        check_ok();
        python_work(callback, seed);
        gilgate_gilstate_release(s);
    } else {
        check_errno_after_error();
        count_status(st);
    }
#endif
    HOST_UNLOCK(&g_host[id]);
}

static void one_tstate(int id, PyThreadState *ts, int *dead, unsigned *seed, int callback) {
    HOST_LOCK(&g_host[id]);
#ifdef GG_RAW
    (void)dead;
    PyEval_RestoreThread(ts);
    check_ok();
    python_work(callback, seed);
    PyEval_SaveThread();
#else
    errno = ERRNO_MARK;
    int st = *dead ? GILGATE_ERR_FINALIZING : gilgate_restore_thread(ts);
    if (st == GILGATE_OK) {
        check_ok();
        python_work(callback, seed);
        if (gilgate_save_thread() != ts) count(RES_OTHER);
    } else {
        check_errno_after_error();
        /* After an error the thread state may be gone: never use it again. */
        *dead = 1;
        count_status(st);
    }
#endif
    HOST_UNLOCK(&g_host[id]);
}

/* Nested: an ensure inside an ensure, released in reverse order, with Python work between
 * (time.sleep(0) in `nested_gap` releases and retakes the GIL inside the outer region). */
static void one_nested(int id, unsigned *seed) {
    HOST_LOCK(&g_host[id]);
#ifdef GG_RAW
    PyGILState_STATE s1 = PyGILState_Ensure();
    check_ok();
    python_work(0, seed);
    PyGILState_STATE s2 = PyGILState_Ensure();
    check_ok();
    python_work(0, seed);
    PyGILState_Release(s2);
    python_work(0, seed);
    PyGILState_Release(s1);
#else
    int s1, s2;
    int st = gilgate_gilstate_ensure(&s1);
    if (st == GILGATE_OK) {
        check_ok();
        python_work(0, seed);
        int st2 = gilgate_gilstate_ensure(&s2);
        if (st2 == GILGATE_OK) {
            check_ok();
            python_work(0, seed);
            gilgate_gilstate_release(s2);
        } else {
            count_status(st2);
        }
        python_work(0, seed);
        gilgate_gilstate_release(s1);
    } else {
        count_status(st);
    }
#endif
    HOST_UNLOCK(&g_host[id]);
}

/* A subinterpreter worker's region: its own thread state, the subinterpreter's `work`. */
static void sub_check_ok(PyThreadState *ts) {
    if (PyThreadState_Get() != ts || HOST_IS_FINALIZING()) count(RES_BAD_OK);
    else count(RES_OK);
}
static void sub_work(unsigned *seed) {
    PyObject *r = PyObject_CallFunction(g_sub_work, "i", (int)(rand_r(seed) % 200));
    if (r) Py_DECREF(r);
    else PyErr_Clear();
}
static void one_sub(int id, PyThreadState *ts, int *dead, unsigned *seed) {
    HOST_LOCK(&g_host[id]);
#ifdef GG_RAW
    (void)dead;
    PyEval_RestoreThread(ts);
    sub_check_ok(ts);
    sub_work(seed);
    PyEval_SaveThread();
#else
    int st = *dead ? GILGATE_ERR_FINALIZING : gilgate_restore_thread(ts);
    if (st == GILGATE_OK) {
        sub_check_ok(ts);
        sub_work(seed);
        if (gilgate_save_thread() != ts) count(RES_OTHER);
    } else {
        *dead = 1;
        count_status(st);
    }
#endif
    HOST_UNLOCK(&g_host[id]);
}
/* Before the subinterpreter may end: clear this thread's state under its GIL, detach, delete.
 * Nothing finalizes the runtime before every subinterpreter worker got here (main waits), so
 * a refusal here is a failure (counted as other). */
static void sub_retire(PyThreadState *ts, int dead) {
    if (dead) { count(RES_OTHER); return; }
#ifdef GG_RAW
    PyEval_RestoreThread(ts);
    PyThreadState_Clear(ts);
    PyEval_SaveThread();
#else
    int st = gilgate_restore_thread(ts);
    if (st != GILGATE_OK) { count(RES_OTHER); return; }
    PyThreadState_Clear(ts);
    if (gilgate_save_thread() != ts) count(RES_OTHER);
#endif
    PyThreadState_Delete(ts); /* detached and cleared: no GIL needed */
}

static void *worker(void *arg) {
    int id = (int)(long)arg;
    unsigned seed = (unsigned)(id * 7919 + 17);
    for (int c = 1; c <= g_cycles; c++) {
        while (go_load() < c) sleep_us(50);
        PyThreadState *ts = NULL;
        int dead = 0;
        int mode = g_mode == M_MIXED ? id % 3 : g_mode;
        if (mode == M_SUBINTERP && id % 2) mode = M_GILSTATE; /* the main interpreter's workers */
        if (mode == M_TSTATE || mode == M_ALLOWCB) ts = PyThreadState_New(g_interp); /* no GIL needed */
        if (mode == M_SUBINTERP) ts = PyThreadState_New(g_sub);
        bump(&g_ready[c]);
        while (load(&g_stop) < c) {
            if (mode == M_SUBINTERP) {
                if (load(&g_sub_stop) >= c) {
                    sub_retire(ts, dead);
                    bump(&g_sub_done[c]);
                    while (load(&g_stop) < c) sleep_us(100);
                    break;
                }
                one_sub(id, ts, &dead, &seed);
            } else if (mode == M_TSTATE || mode == M_ALLOWCB) one_tstate(id, ts, &dead, &seed, mode == M_ALLOWCB ? 2 : 0);
            else if (mode == M_NESTED) one_nested(id, &seed);
            else one_gilstate(id, mode == M_CALLBACK, &seed);
            if (rand_r(&seed) % 4 == 0) sleep_us(rand_r(&seed) % 200);
        }
        bump(&g_acked[c]);
    }
    /* Stay alive until main has read gilgate's open regions (an exiting thread frees its slot). */
    while (!load(&g_exit)) sleep_us(100);
    g_finished[id] = 1;
    return NULL;
}

static const char *PY_SETUP =
    "import time\n"
    "import os\n"
    "SLEEP = os.environ.get('SEED_NO_SLEEP') != '1'\n"
    "def work(n):\n"
    "    s = 0\n"
    "    for i in range(n): s += i\n"
    "    if SLEEP and n % 3 == 0: time.sleep(0)\n"
    "    return s\n"
    "def work_cb(cb):\n"
    "    cb()\n"
    "    time.sleep(0)\n"
    "    return cb()\n";

static void setup_python(void) {
    PyObject *main = PyImport_AddModule("__main__");
    PyObject *d = PyModule_GetDict(main);
    PyObject *r = PyRun_String(PY_SETUP, Py_file_input, d, d);
    if (!r) { PyErr_Print(); exit(70); }
    Py_DECREF(r);
    g_work = PyDict_GetItemString(d, "work");
    g_work_cb = PyDict_GetItemString(d, "work_cb");
    g_cb = PyCFunction_New(&host_cb_def, NULL);
    g_block_cb = PyCFunction_New(&host_block_def, NULL);
    Py_INCREF(g_work); Py_INCREF(g_work_cb);
    g_interp = PyThreadState_Get()->interp;
}

/* subinterp mode: a subinterpreter sharing the main GIL (Py_NewInterpreter: the legacy config
 * on 3.12+ too). A shared GIL keeps the GIL a waiting worker sleeps on alive when the
 * subinterpreter is deleted. Returns its main thread state; `main_ts` is current again after. */
static PyThreadState *setup_subinterp(PyThreadState *main_ts) {
    PyThreadState *sub_ts = Py_NewInterpreter();
    if (!sub_ts) { fprintf(stderr, "Py_NewInterpreter failed\n"); exit(73); }
    g_sub = sub_ts->interp;
    PyObject *d = PyModule_GetDict(PyImport_AddModule("__main__"));
    PyObject *r = PyRun_String(PY_SETUP, Py_file_input, d, d);
    if (!r) { PyErr_Print(); exit(70); }
    Py_DECREF(r);
    g_sub_work = PyDict_GetItemString(d, "work");
    Py_INCREF(g_sub_work);
    PyThreadState_Swap(main_ts);
    return sub_ts;
}

/* End the subinterpreter once every worker of it has deleted its thread state. Called without
 * the GIL; returns without it. Py_EndInterpreter leaves no thread state current; 3.8-3.11
 * return holding the GIL, 3.12+ release it: the Swap back re-attaches main_ts either way
 * (3.12+ Swap takes the GIL, 3.8-3.11 Swap only switches the pointer). */
static void end_subinterp(PyThreadState *main_ts, PyThreadState *sub_ts) {
#ifdef GG_RAW
    PyEval_RestoreThread(main_ts);
#else
    gilgate_status st = gilgate_restore_thread(main_ts);
    if (st != GILGATE_OK) { fprintf(stderr, "main restore (sub end): %s\n", gilgate_status_str(st)); exit(74); }
#endif
    PyThreadState_Swap(sub_ts);
    Py_DECREF(g_sub_work);
    g_sub_work = NULL;
    Py_EndInterpreter(sub_ts);
    g_sub = NULL;
    PyThreadState_Swap(main_ts);
#ifdef GG_RAW
    PyEval_SaveThread();
#else
    if (gilgate_save_thread() != main_ts) { fprintf(stderr, "main save (sub end) failed\n"); exit(74); }
#endif
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s gilstate|tstate|callback|mixed|nested|subinterp|allowcb WORKERS DELAY_US CYCLES SEED\n", argv[0]);
        return 64;
    }
    const char *m = argv[1];
    g_mode = !strcmp(m, "gilstate") ? M_GILSTATE : !strcmp(m, "tstate") ? M_TSTATE
           : !strcmp(m, "callback") ? M_CALLBACK : !strcmp(m, "mixed") ? M_MIXED
           : !strcmp(m, "nested") ? M_NESTED : !strcmp(m, "subinterp") ? M_SUBINTERP
           : !strcmp(m, "allowcb") ? M_ALLOWCB : -1;
    g_workers = atoi(argv[2]);
    long delay_us = atol(argv[3]);
    g_cycles = atoi(argv[4]);
    unsigned seed = (unsigned)atol(argv[5]);
    /* SEED_STOP_FIRST=1: workers are stopped and acknowledged before finalization. */
    const char *sf = getenv("SEED_STOP_FIRST");
    int stop_first = sf && *sf == '1';
    if (g_mode < 0 || g_workers < 1 || g_workers > MAX_WORKERS || g_cycles < 1 || g_cycles > MAX_WORKERS) {
        fprintf(stderr, "bad arguments\n");
        return 64;
    }
    pthread_t th[MAX_WORKERS];
    for (int i = 0; i < g_workers; i++) {
        pthread_mutex_init(&g_host[i], NULL);
        pthread_create(&th[i], NULL, worker, (void *)(long)i);
    }
    for (int c = 1; c <= g_cycles; c++) {
        Py_InitializeEx(0);
        setup_python();
        PyThreadState *sub_ts = NULL;
        if (g_mode == M_SUBINTERP) sub_ts = setup_subinterp(PyThreadState_Get());
        PyThreadState *main_ts = PyEval_SaveThread();
        go_store(c);
        while (load(&g_ready[c]) < g_workers) sleep_us(50);
        sleep_us(delay_us ? (long)(rand_r(&seed) % (unsigned)delay_us) : 0);
        if (sub_ts) {
            /* Stop the subinterpreter's workers, wait until each deleted its thread state, end
             * it while the main interpreter's workers call in, then finalize after a while. */
            int n_sub = (g_workers + 1) / 2;
            store(&g_sub_stop, c);
            while (load(&g_sub_done[c]) < n_sub) sleep_us(100);
            end_subinterp(main_ts, sub_ts);
            sleep_us(delay_us ? (long)(rand_r(&seed) % (unsigned)delay_us) : 0);
        }
        if (stop_first) {
            /* A well-behaved host: stop calling in before finalizing. */
            store(&g_stop, c);
            while (load(&g_acked[c]) < g_workers) sleep_us(100);
        }
#ifdef GG_RAW
        PyEval_RestoreThread(main_ts);
        Py_FinalizeEx();
#else
        gilgate_status rst = gilgate_restore_thread(main_ts);
        if (rst != GILGATE_OK) { fprintf(stderr, "main restore: %s\n", gilgate_status_str(rst)); return 71; }
        int pyrc;
        gilgate_status st = gilgate_finalize(&pyrc);
        if (st != GILGATE_OK) { fprintf(stderr, "finalize: %s\n", gilgate_status_str(st)); return 72; }
#endif
        store(&g_stop, c);
        /* The host's own shutdown: take every lock the workers use, then wait for them. */
        for (int i = 0; i < g_workers; i++) {
            pthread_mutex_lock(&g_host[i]);
            pthread_mutex_unlock(&g_host[i]);
        }
        while (load(&g_acked[c]) < g_workers) sleep_us(100);
    }
    /* Every worker acknowledged the last stop, so none is inside a region; none has exited yet
     * (they wait for g_exit), so their slots still say whether a region was left open. */
    char leaked[24] = "n/a";
    long n_leaked = 0;
    long kills = -1, hangs = -1;
#ifndef GG_RAW
    struct gilgate_stats gs;
    if (gilgate_stats(&gs) == GILGATE_OK) {
        kills = (long)gs.kills_intercepted;
        hangs = (long)gs.hangs_intercepted;
        n_leaked = (long)gs.open_regions;
        snprintf(leaked, sizeof leaked, "%ld", n_leaked);
    }
#endif
    store(&g_exit, 1);
    int vanished = 0;
    for (int i = 0; i < g_workers; i++) {
        pthread_join(th[i], NULL);
        if (!g_finished[i]) vanished++;
    }
    printf("RESULT ok=%ld finalizing=%ld notinit=%ld other=%ld bad_ok=%ld vanished=%d cycles=%d kills=%ld hangs=%ld leaked=%s\n",
           g_results[RES_OK], g_results[RES_FINALIZING], g_results[RES_NOTINIT], g_results[RES_OTHER],
           g_results[RES_BAD_OK], vanished, g_cycles, kills, hangs, leaked);
    fflush(stdout);
    return vanished || g_results[RES_BAD_OK] || g_results[RES_OTHER] || n_leaked ? 1 : 0;
}

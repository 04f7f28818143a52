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
 *   MODE: gilstate | tstate | callback | mixed
 *   SEED_STOP_FIRST=1 in the environment: stop the workers before finalizing (a careful host)
 *   SEED_NO_SLEEP=1: the Python work never releases the GIL itself (no time.sleep)
 * Prints one line: RESULT ok=N finalizing=N notinit=N other=N bad_ok=N vanished=N cycles=N
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#ifndef GG_RAW
#include "gilgate.h"
#endif
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
enum { M_GILSTATE, M_TSTATE, M_CALLBACK, M_MIXED };
enum { RES_OK, RES_FINALIZING, RES_NOTINIT, RES_OTHER, RES_BAD_OK, RES_N };

static int g_mode, g_workers, g_cycles;
static volatile int g_go, g_stop; /* cycle numbers, written by main */
static int g_ready[MAX_WORKERS + 1], g_acked[MAX_WORKERS + 1];
static pthread_mutex_t g_host[MAX_WORKERS];
static pthread_mutex_t g_count_lock = PTHREAD_MUTEX_INITIALIZER;
static long g_results[RES_N];
static int g_finished[MAX_WORKERS];
static PyObject *g_work, *g_work_cb, *g_cb; /* per cycle, set by main before go */
static PyInterpreterState *g_interp;

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

/* After a successful entry the GIL must be held and the runtime must not be finalizing. */
static void check_ok(void) {
    if (!PyGILState_Check() || HOST_IS_FINALIZING())
        count(RES_BAD_OK);
    else
        count(RES_OK);
}

#ifndef GG_RAW
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

static void python_work(int callback, unsigned *seed) {
    PyObject *r;
    if (callback)
        r = PyObject_CallFunction(g_work_cb, "O", g_cb);
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
    int st = gilgate_gilstate_ensure(&s);
    if (st == GILGATE_OK) {
        check_ok();
        python_work(callback, seed);
        gilgate_gilstate_release(s);
    } else {
        count_status(st);
    }
#endif
    HOST_UNLOCK(&g_host[id]);
}

static void one_tstate(int id, PyThreadState *ts, int *dead, unsigned *seed) {
    HOST_LOCK(&g_host[id]);
#ifdef GG_RAW
    (void)dead;
    PyEval_RestoreThread(ts);
    check_ok();
    python_work(0, seed);
    PyEval_SaveThread();
#else
    int st = *dead ? GILGATE_ERR_FINALIZING : gilgate_restore_thread(ts);
    if (st == GILGATE_OK) {
        check_ok();
        python_work(0, seed);
        if (gilgate_save_thread() != ts) count(RES_OTHER);
    } else {
        /* After an error the thread state may be gone: never use it again. */
        *dead = 1;
        count_status(st);
    }
#endif
    HOST_UNLOCK(&g_host[id]);
}

static void *worker(void *arg) {
    int id = (int)(long)arg;
    unsigned seed = (unsigned)(id * 7919 + 17);
    for (int c = 1; c <= g_cycles; c++) {
        while (go_load() < c) sleep_us(50);
        PyThreadState *ts = NULL;
        int dead = 0;
        int mode = g_mode == M_MIXED ? id % 3 : g_mode;
        if (mode == M_TSTATE) ts = PyThreadState_New(g_interp); /* no GIL needed */
        bump(&g_ready[c]);
        while (load(&g_stop) < c) {
            if (mode == M_TSTATE) one_tstate(id, ts, &dead, &seed);
            else one_gilstate(id, mode == M_CALLBACK, &seed);
            if (rand_r(&seed) % 4 == 0) sleep_us(rand_r(&seed) % 200);
        }
        bump(&g_acked[c]);
    }
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
    Py_INCREF(g_work); Py_INCREF(g_work_cb);
    g_interp = PyThreadState_Get()->interp;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s gilstate|tstate|callback|mixed WORKERS DELAY_US CYCLES SEED\n", argv[0]);
        return 64;
    }
    const char *m = argv[1];
    g_mode = !strcmp(m, "gilstate") ? M_GILSTATE : !strcmp(m, "tstate") ? M_TSTATE
           : !strcmp(m, "callback") ? M_CALLBACK : !strcmp(m, "mixed") ? M_MIXED : -1;
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
        PyThreadState *main_ts = PyEval_SaveThread();
        go_store(c);
        while (load(&g_ready[c]) < g_workers) sleep_us(50);
        sleep_us(delay_us ? (long)(rand_r(&seed) % (unsigned)delay_us) : 0);
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
    int vanished = 0;
    for (int i = 0; i < g_workers; i++) {
        pthread_join(th[i], NULL);
        if (!g_finished[i]) vanished++;
    }
    long kills = -1, hangs = -1;
#ifndef GG_RAW
    struct gilgate_stats gs;
    if (gilgate_stats(&gs) == GILGATE_OK) { kills = (long)gs.kills_intercepted; hangs = (long)gs.hangs_intercepted; }
#endif
    printf("RESULT ok=%ld finalizing=%ld notinit=%ld other=%ld bad_ok=%ld vanished=%d cycles=%d kills=%ld hangs=%ld\n",
           g_results[RES_OK], g_results[RES_FINALIZING], g_results[RES_NOTINIT], g_results[RES_OTHER],
           g_results[RES_BAD_OK], vanished, g_cycles, kills, hangs);
    fflush(stdout);
    return vanished || g_results[RES_BAD_OK] || g_results[RES_OTHER] ? 1 : 0;
}

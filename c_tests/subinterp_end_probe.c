/* Probe, run by hand (not part of the suite): what Py_EndInterpreter does while another thread
 * still holds a thread state of that subinterpreter. gilgate cannot make this safe; docs/api.md's
 * misuse table reports the results. The safe pattern (stop the threads, clear and delete their
 * thread states, then end the interpreter) is seed_host.c's `subinterp` mode.
 *
 * usage: subinterp_end_probe A|B|C      (build like seed_host.c, linked with -lgilgate)
 *   A  the worker holds a thread state of the subinterpreter but never uses it
 *   B  the worker loops gilgate_restore_thread / Python work that releases the GIL
 *      (time.sleep(0)) / gilgate_save_thread
 *   C  as B, but the region's work is C only (PyLong_FromLong), so the GIL is never released
 *      inside a region: only the worker's entry can race Py_EndInterpreter
 * Measured 2026-11-26: 3.8.18, 3.12.1, 3.13.0: A, B and C all abort with "Fatal Python error:
 * Py_EndInterpreter: not the last thread".
 * 3.14.10 / 3.15.2: A ends clean (a few runs; the unused thread state is left dangling); B ends
 * in gilgate's policy abort in 30 of 30 runs each (parked inside its region, outside any entry);
 * C (30 runs each): the worker
 * gets GILGATE_ERR_FINALIZING (park caught) in 24/30 and 26/30, a segfault in CPython in 1/30
 * each, and in the rest it saw no refusal (it did not enter after the end, or entered the deleted
 * interpreter unnoticed: the probe cannot tell).
 * Prints `joined ok=N fin=N other=N` when the process survives. */
#include <Python.h>
#include "gilgate.h"
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static PyInterpreterState *sub;
static int mode, stop, ready;
static long ok, fin, other;

static void *worker(void *arg) {
    (void)arg;
    PyThreadState *ts = PyThreadState_New(sub);
    __atomic_store_n(&ready, 1, __ATOMIC_SEQ_CST);
    if (mode == 'A') {
        while (!__atomic_load_n(&stop, __ATOMIC_SEQ_CST)) usleep(100);
        return NULL; /* never touch ts again: its interpreter may be gone */
    }
    while (!__atomic_load_n(&stop, __ATOMIC_SEQ_CST)) {
        int st = gilgate_restore_thread(ts);
        if (st != GILGATE_OK) {
            if (st == GILGATE_ERR_FINALIZING) fin++;
            else other++;
            fprintf(stderr, "worker: %s\n", gilgate_status_str(st));
            return NULL;
        }
        ok++;
        if (mode == 'C') {
            PyObject *o = PyLong_FromLong(ok);
            Py_DECREF(o);
        } else {
            PyRun_SimpleString("import time; time.sleep(0)");
        }
        (void)gilgate_save_thread();
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2 || (argv[1][0] != 'A' && argv[1][0] != 'B' && argv[1][0] != 'C')) {
        fprintf(stderr, "usage: %s A|B|C\n", argv[0]);
        return 64;
    }
    mode = argv[1][0];
    Py_InitializeEx(0);
    PyThreadState *main_ts = PyThreadState_Get();
    PyThreadState *sub_ts = Py_NewInterpreter();
    if (!sub_ts) return 70;
    sub = sub_ts->interp;
    PyThreadState_Swap(main_ts);
    PyThreadState *saved = PyEval_SaveThread();
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    while (!__atomic_load_n(&ready, __ATOMIC_SEQ_CST)) usleep(100);
    usleep(20000);
    if (gilgate_restore_thread(saved) != GILGATE_OK) return 71;
    PyThreadState_Swap(sub_ts);
    fprintf(stderr, "main: ending the subinterpreter (worker entries so far: %ld)\n", ok);
    Py_EndInterpreter(sub_ts); /* 3.8-3.11 return holding the GIL, 3.12+ without it */
    fprintf(stderr, "main: ended\n");
    PyThreadState_Swap(main_ts);
    (void)gilgate_save_thread();
    __atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(t, NULL);
    fprintf(stderr, "joined ok=%ld fin=%ld other=%ld\n", ok, fin, other);
    if (gilgate_restore_thread(main_ts) != GILGATE_OK) return 72;
    int rc;
    if (gilgate_finalize(&rc) != GILGATE_OK) return 73;
    return 0;
}

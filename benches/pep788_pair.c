/* PEP 788 compatibility layer cost (issue 24): one attach+detach pair on a thread that holds no
 * GIL (the main thread after PyEval_SaveThread; its gilstate thread state exists), through
 *   raw      PyGILState_Ensure/Release, libpython's own (dlsym on libpython's handle)
 *   api      gilgate_gilstate_ensure/release
 *   guard    PyThreadState_Ensure(guard)/PyThreadState_Release(token), guard held throughout
 *   view     PyThreadState_EnsureFromView(view)/PyThreadState_Release(token) (a guard per pair)
 * where the PEP 788 names come from gilgate_pep788.h: gilgate's exports below 3.15, CPython's
 * own from 3.15 on.
 *   pep788_pair MODE N           N pairs of one mode (for callgrind: benches/pep788.sh)
 *   pep788_pair time BLOCKS N    wall clock: BLOCKS blocks of N pairs per mode, the modes'
 *                                order rotating per block; prints per mode the median and
 *                                p10/p90 over blocks of (mode - raw) ns per pair, paired per block */
#include <Python.h>
#include "gilgate_pep788.h"
#include "gilgate.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static PyGILState_STATE (*rens)(void);
static void (*rrel)(PyGILState_STATE);
static PyInterpreterGuard *guard;
static PyInterpreterView *view;

static int run(int mode, long n) {
    switch (mode) {
    case 0: for (long i = 0; i < n; i++) { PyGILState_STATE s = rens(); rrel(s); } break;
    case 1: for (long i = 0; i < n; i++) { int s; if (gilgate_gilstate_ensure(&s)) return 1; gilgate_gilstate_release(s); } break;
    case 2: for (long i = 0; i < n; i++) { PyThreadStateToken *t = PyThreadState_Ensure(guard); if (!t) return 1; PyThreadState_Release(t); } break;
    case 3: for (long i = 0; i < n; i++) { PyThreadStateToken *t = PyThreadState_EnsureFromView(view); if (!t) return 1; PyThreadState_Release(t); } break;
    }
    return 0;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char *NAMES[] = {"raw", "api", "guard", "view"};

int main(int argc, char **argv) {
    if (argc < 3) return 64;
    Py_InitializeEx(0);
    Dl_info info;
    if (!dladdr((void *)Py_IsInitialized, &info)) return 65;
    void *py = dlopen(info.dli_fname, RTLD_NOLOAD | RTLD_LAZY);
    if (!py) return 66;
    rens = (PyGILState_STATE(*)(void))dlsym(py, "PyGILState_Ensure");
    rrel = (void (*)(PyGILState_STATE))dlsym(py, "PyGILState_Release");
    guard = PyInterpreterGuard_FromCurrent();
    view = PyInterpreterView_FromCurrent();
    if (!rens || !rrel || !guard || !view) return 67;
    PyThreadState *main_ts = PyEval_SaveThread();
    int rc = 0;
    if (!strcmp(argv[1], "time") && argc == 4) {
        int blocks = atoi(argv[2]);
        long n = atol(argv[3]);
        double *d[4];
        for (int m = 0; m < 4; m++) d[m] = calloc((size_t)blocks, sizeof(double));
        rc |= run(0, n) | run(1, n) | run(2, n) | run(3, n); /* warm-up */
        for (int b = 0; b < blocks; b++) {
            double t[4];
            for (int k = 0; k < 4; k++) {
                int m = (b + k) % 4;
                double t0 = now_ns();
                rc |= run(m, n);
                t[m] = (now_ns() - t0) / n;
            }
            for (int m = 0; m < 4; m++) d[m][b] = m == 0 ? t[0] : t[m] - t[0];
        }
        for (int m = 0; m < 4; m++) {
            qsort(d[m], (size_t)blocks, sizeof(double), cmp);
            printf("R %s %.1f %.1f %.1f\n", NAMES[m], d[m][blocks / 2], d[m][blocks / 10], d[m][blocks - 1 - blocks / 10]);
        }
    } else {
        long n = atol(argv[2]);
        int mode = -1;
        for (int m = 0; m < 4; m++) if (!strcmp(argv[1], NAMES[m])) mode = m;
        if (mode < 0) return 64;
        rc = run(mode, n);
    }
    PyEval_RestoreThread(main_ts);
    PyInterpreterGuard_Close(guard);
    PyInterpreterView_Close(view);
    Py_FinalizeEx();
    return rc;
}

/* A host that switches thread states between interpreters with PyThreadState_Swap, the way
 * mod_wsgi and JEP do (CPython 3.12+, where Swap takes and releases the GIL):
 *   - the subinterpreter is created mod_wsgi's way: Swap(NULL), Py_NewInterpreter, Swap(saved);
 *   - each worker owns a thread state of the main interpreter and one of the subinterpreter and
 *     loops: PyEval_AcquireThread(main state); Python; Swap(sub state); Python in the
 *     subinterpreter; Swap(main state); PyEval_ReleaseThread (JEP's switches);
 *   - polite: the workers stop, clear and delete their states; main ends the subinterpreter
 *     (Swap to it, Py_EndInterpreter, Swap back) and finalizes.
 * Prints "RESULT rounds=N". Built raw (CPython's names: under gilgate by LD_PRELOAD or linked
 * ahead of libpython); harness/tests/idioms.rs runs it with GILGATE_SHOW_STATS=1.
 * usage: swap_host WORKERS */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MAXW 16
static PyInterpreterState *g_main, *g_sub;
static atomic_int g_stop;
static atomic_long g_rounds;

static void *worker(void *arg) {
    (void)arg;
    PyThreadState *tm = PyThreadState_New(g_main);
    PyThreadState *ts = PyThreadState_New(g_sub);
    while (!atomic_load(&g_stop)) {
        PyEval_AcquireThread(tm);
        PyRun_SimpleString("a = sum(range(50))");
        PyThreadState *prev = PyThreadState_Swap(ts);
        PyRun_SimpleString("b = sum(range(50))");
        PyThreadState_Swap(prev);
        PyEval_ReleaseThread(tm);
        atomic_fetch_add(&g_rounds, 1);
        usleep(100);
    }
    PyEval_AcquireThread(ts);
    PyThreadState_Clear(ts);
    PyThreadState_Swap(tm);
    PyThreadState_Delete(ts);
    PyThreadState_Clear(tm);
    PyThreadState_DeleteCurrent();
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    if (n < 1 || n > MAXW)
        return 64;
#if PY_VERSION_HEX < 0x030C0000
    printf("RESULT rounds=0 (PyThreadState_Swap takes no GIL before 3.12: nothing to test)\n");
    return 0;
#else
    Py_Initialize();
    PyThreadState *main_ts = PyThreadState_Get();
    g_main = main_ts->interp;
    PyThreadState *saved = PyThreadState_Swap(NULL);
    PyThreadState *sub0 = Py_NewInterpreter();
    if (!sub0) {
        fprintf(stderr, "Py_NewInterpreter failed\n");
        return 70;
    }
    g_sub = sub0->interp;
    PyThreadState_Swap(saved);
    PyEval_SaveThread();
    pthread_t t[MAXW];
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    while (atomic_load(&g_rounds) < 100L * n)
        usleep(1000);
    atomic_store(&g_stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    PyEval_RestoreThread(main_ts);
    PyThreadState_Swap(sub0);
    Py_EndInterpreter(sub0);
    PyThreadState_Swap(main_ts);
    printf("RESULT rounds=%ld\n", atomic_load(&g_rounds));
    fflush(stdout);
    return Py_FinalizeEx() < 0 ? 71 : 0;
#endif
}

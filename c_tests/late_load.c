/* Bad input and odd timing: gilgate loaded with dlopen after start (it cannot interpose then,
 * and must say so with GILGATE_VERBOSE=1, yet its fallible API still answers correctly), and a
 * thread calling in while the main thread is inside Py_Initialize.
 * usage: late_load /path/to/libgilgate.so   -> RESULT line, exit 0 iff every check held */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "gilgate.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static int failures, checks;
#define CHECK(cond) do { checks++; if (!(cond)) { failures++; \
    fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)

static gilgate_status (*p_ensure)(int *);
static void (*p_release)(int);
static gilgate_status (*p_finalize)(int *);
static gilgate_status (*p_status)(void);
static volatile int g_stop;
static long g_ok, g_notinit, g_other;

static void *caller(void *arg) {
    (void)arg;
    while (!__atomic_load_n(&g_stop, __ATOMIC_SEQ_CST)) {
        int st;
        gilgate_status rc = p_ensure(&st);
        if (rc == GILGATE_OK) { p_release(st); __atomic_add_fetch(&g_ok, 1, __ATOMIC_SEQ_CST); }
        else if (rc == GILGATE_ERR_NOT_INITIALIZED) __atomic_add_fetch(&g_notinit, 1, __ATOMIC_SEQ_CST);
        else __atomic_add_fetch(&g_other, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s libgilgate.so\n", argv[0]); return 64; }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 65; }
    *(void **)&p_ensure = dlsym(h, "gilgate_gilstate_ensure");
    *(void **)&p_release = dlsym(h, "gilgate_gilstate_release");
    *(void **)&p_finalize = dlsym(h, "gilgate_finalize");
    *(void **)&p_status = dlsym(h, "gilgate_runtime_status");
    CHECK(p_ensure && p_release && p_finalize && p_status);
    if (failures) return 1;
    CHECK(p_status() == GILGATE_ERR_NOT_INITIALIZED);

    pthread_t t;
    pthread_create(&t, NULL, caller, NULL);
    Py_InitializeEx(0);                 /* the caller thread hammers gilgate meanwhile */
    PyThreadState *ts = PyEval_SaveThread();
    /* 20 ms more, then until the caller has made at least one call (at most 20 s): on a loaded
     * machine it may not have been scheduled at all yet, and "a call was answered" must not
     * depend on that. */
    struct timespec d = {0, 20 * 1000 * 1000};
    nanosleep(&d, NULL);
    for (int i = 0; i < 1000 && __atomic_load_n(&g_ok, __ATOMIC_SEQ_CST) + __atomic_load_n(&g_notinit, __ATOMIC_SEQ_CST)
                                      + __atomic_load_n(&g_other, __ATOMIC_SEQ_CST) == 0; i++)
        nanosleep(&d, NULL);
    __atomic_store_n(&g_stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(t, NULL);
    CHECK(g_other == 0);
    CHECK(g_notinit + g_ok > 0);
    PyEval_RestoreThread(ts);

    CHECK(p_status() == GILGATE_OK);
    int st, rc = -1;
    CHECK(p_ensure(&st) == GILGATE_OK);
    p_release(st);
    CHECK(p_finalize(&rc) == GILGATE_OK && rc == 0);
    CHECK(p_ensure(&st) == GILGATE_ERR_NOT_INITIALIZED);
    CHECK(p_status() == GILGATE_ERR_NOT_INITIALIZED);
    printf("RESULT checks=%d failures=%d during_init_ok=%ld during_init_notinit=%ld vanished=0 \n",
           checks, failures, g_ok, g_notinit);
    return failures ? 1 : 0;
}

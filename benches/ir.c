/* Instruction-count benchmark (load-independent, for callgrind): N save+restore pairs through
 * raw libpython (resolved on libpython's own handle), through the gilgate_* API, or through
 * gilgate's exported drop-in symbols.  usage: ir raw|api|exported N */
#include <Python.h>
#include "gilgate.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) return 64;
    int n = atoi(argv[2]);
    Py_InitializeEx(0);
    Dl_info info;
    if (!dladdr((void *)Py_IsInitialized, &info)) return 65;
    void *py = dlopen(info.dli_fname, RTLD_NOLOAD | RTLD_LAZY);
    if (!py) return 66;
    PyThreadState *(*rsave)(void) = (PyThreadState * (*)(void)) dlsym(py, "PyEval_SaveThread");
    void (*rrest)(PyThreadState *) = (void (*)(PyThreadState *))dlsym(py, "PyEval_RestoreThread");
    int gs;
    if (gilgate_gilstate_ensure(&gs)) return 67;
    gilgate_gilstate_release(gs);
    /* One loop per variant: the loop body is identical apart from the two calls. */
    if (!strcmp(argv[1], "raw")) {
        for (int i = 0; i < n; i++) { PyThreadState *t = rsave(); rrest(t); }
    } else if (!strcmp(argv[1], "api")) {
        for (int i = 0; i < n; i++) { PyThreadState *t = gilgate_save_thread(); if (gilgate_restore_thread(t)) return 2; }
    } else {
        for (int i = 0; i < n; i++) { PyThreadState *t = PyEval_SaveThread(); PyEval_RestoreThread(t); }
    }
    return 0;
}

/* Instruction-count benchmark (load-independent, for callgrind): N save+restore pairs, or (the
 * *_gs modes) N ensure+release pairs on a thread without the GIL, through raw libpython
 * (resolved on libpython's own handle), through the gilgate_* API, or through gilgate's exported
 * drop-in symbols.  usage: ir raw|api|exported|raw_gs|api_gs|exported_gs N */
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
    PyGILState_STATE (*rens)(void) = (PyGILState_STATE(*)(void))dlsym(py, "PyGILState_Ensure");
    void (*rrel)(PyGILState_STATE) = (void (*)(PyGILState_STATE))dlsym(py, "PyGILState_Release");
    int gs;
    if (gilgate_gilstate_ensure(&gs)) return 67;
    gilgate_gilstate_release(gs);
    if (strstr(argv[1], "_gs")) {
        PyThreadState *main_ts = PyEval_SaveThread();
        if (!strcmp(argv[1], "raw_gs")) {
            for (int i = 0; i < n; i++) { PyGILState_STATE s = rens(); rrel(s); }
        } else if (!strcmp(argv[1], "api_gs")) {
            for (int i = 0; i < n; i++) { int s; if (gilgate_gilstate_ensure(&s)) return 2; gilgate_gilstate_release(s); }
        } else {
            for (int i = 0; i < n; i++) { PyGILState_STATE s = PyGILState_Ensure(); PyGILState_Release(s); }
        }
        PyEval_RestoreThread(main_ts);
        return 0;
    }
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

/* Plain C extension module (CPython's C API only) for the real-client suite's `daemon` variant
 * (clients/README.md): Python's own daemon threads (threading.Thread(daemon=True)) call
 * blocking(ms) in a loop while the main thread returns.
 *
 * blocking(ms): Py_BEGIN_ALLOW_THREADS (PyEval_SaveThread) ... ms of blocking work (nanosleep)
 *   ... Py_END_ALLOW_THREADS (PyEval_RestoreThread, where CPython 3.8-3.13 end the thread with
 *   pthread_exit when finalizing: C frames only, nothing runs on the way out). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>

static PyObject *gg_blocking(PyObject *self, PyObject *arg) {
    (void)self;
    long ms = PyLong_AsLong(arg);
    if (ms == -1 && PyErr_Occurred())
        return NULL;
    if (ms < 0)
        ms = 0;
    Py_BEGIN_ALLOW_THREADS
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyMethodDef gg_methods[] = {
    {"blocking", gg_blocking, METH_O, "blocking(ms): sleep ms with the GIL released"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef gg_module = {PyModuleDef_HEAD_INIT, "gg_capi", NULL, -1, gg_methods,
                                       NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_gg_capi(void) { return PyModule_Create(&gg_module); }

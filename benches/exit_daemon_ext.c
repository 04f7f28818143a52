/* benches/exit_daemon_ext.c: extension module gg_nap. nap(k): k times
 * Py_BEGIN_ALLOW_THREADS; usleep(2000); Py_END_ALLOW_THREADS (an extension that blocks without the
 * GIL, e.g. I/O), driven by benches/exit_daemon.py's daemon threads.                            */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <unistd.h>

static PyObject *nap(PyObject *self, PyObject *arg) {
    (void)self;
    long k = PyLong_AsLong(arg);
    if (k == -1 && PyErr_Occurred()) return NULL;
    for (long i = 0; i < k; i++) {
        Py_BEGIN_ALLOW_THREADS
        usleep(2000);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {{"nap", nap, METH_O, "k x (release the GIL, usleep(2000), take it back)"},
                                {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "gg_nap", NULL, -1, methods, NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit_gg_nap(void) { return PyModule_Create(&def); }

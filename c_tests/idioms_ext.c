/* An extension module whose native threads call Python back the way real clients do
 * (shared/client-idioms.md), without needing those clients installed: harness/tests/idioms.rs
 * runs it under gilgate (preload) next to the real-client suite.
 *
 *   start(n, callback, mode)  n pthreads loop { acquire; callback(); release } until stop()
 *   stop()                    tell them to stop and join them (GIL released while joining)
 *   mode:
 *     "pybind11"  PyThreadState_New + PyEval_AcquireThread ... PyThreadState_Clear +
 *                 PyThreadState_DeleteCurrent (pybind11's gil_scoped_acquire on a fresh thread)
 *     "owned"     one thread state for the thread's life; PyEval_RestoreThread / SaveThread per
 *                 round, and inside the round Py_BEGIN/END_ALLOW_THREADS around a host mutex
 *                 (pybind11's gil_scoped_release), then the callback
 *     "gilstate"  PyGILState_Ensure / Release (nanobind, Cython `with gil`, ctypes, SWIG)
 *     "foreign"   PyGILState_Ensure; the callback calls blocking_call(f), which releases the GIL
 *                 and calls f back from C through a nested PyGILState_Ensure (cffi/ctypes
 *                 callbacks during a foreign call, numpy NPY_ALLOW_C_API)
 *     "swap"      PyGILState_Ensure; then PyThreadState_Swap(NULL) ... PyEval_RestoreThread
 *                 (Cython >= 3.2 `with nogil` inside a nogil function on CPython 3.13+)
 *   blocking_call(f)  Py_BEGIN_ALLOW_THREADS; host mutex; nested ensure + f(); Py_END_ALLOW_THREADS
 *   rounds()          total rounds completed by the workers so far
 *   hold() / unhold() take / give back the host mutex (GIL released while taking it): "owned"
 *                     workers then wait inside their ALLOW_THREADS pair, i.e. inside their region
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define MAXT 64
static pthread_t threads[MAXT];
static int nthreads;
static atomic_int stop_flag;
static atomic_long rounds_done;
static PyObject *callback;
static PyInterpreterState *interp;
static char mode[16];
static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;

static void call_back(void) {
    PyObject *r = PyObject_CallObject(callback, NULL);
    if (!r)
        PyErr_Print();
    Py_XDECREF(r);
}

static void *worker(void *arg) {
    (void)arg;
    PyThreadState *own = NULL;
    if (!strcmp(mode, "owned"))
        own = PyThreadState_New(interp);
    while (!atomic_load(&stop_flag)) {
        if (!strcmp(mode, "pybind11")) {
            PyThreadState *ts = PyThreadState_New(interp);
            PyEval_AcquireThread(ts);
            call_back();
            PyThreadState_Clear(ts);
            PyThreadState_DeleteCurrent();
        } else if (!strcmp(mode, "owned")) {
            PyEval_RestoreThread(own);
            Py_BEGIN_ALLOW_THREADS
            pthread_mutex_lock(&host_lock);
            pthread_mutex_unlock(&host_lock);
            Py_END_ALLOW_THREADS
            call_back();
            PyEval_SaveThread();
        } else if (!strcmp(mode, "swap")) {
            PyGILState_STATE g = PyGILState_Ensure();
            call_back();
#if PY_VERSION_HEX >= 0x030C0000
            PyThreadState *save = PyThreadState_Swap(NULL);
            pthread_mutex_lock(&host_lock);
            pthread_mutex_unlock(&host_lock);
            PyEval_RestoreThread(save);
#endif
            PyGILState_Release(g);
        } else { /* gilstate, foreign */
            PyGILState_STATE g = PyGILState_Ensure();
            call_back();
            PyGILState_Release(g);
        }
        atomic_fetch_add(&rounds_done, 1);
        usleep(200);
    }
    if (own) {
        PyEval_RestoreThread(own);
        PyThreadState_Clear(own);
        PyThreadState_DeleteCurrent();
    }
    return NULL;
}

static PyObject *start(PyObject *self, PyObject *args) {
    (void)self;
    int n;
    PyObject *cb;
    const char *m;
    if (!PyArg_ParseTuple(args, "iOs", &n, &cb, &m))
        return NULL;
    if (n < 1 || n > MAXT || nthreads) {
        PyErr_SetString(PyExc_ValueError, "bad n or already started");
        return NULL;
    }
    Py_INCREF(cb);
    callback = cb;
    snprintf(mode, sizeof mode, "%s", m);
    interp = PyThreadState_Get()->interp;
    atomic_store(&stop_flag, 0);
    for (int i = 0; i < n; i++)
        pthread_create(&threads[i], NULL, worker, NULL);
    nthreads = n;
    Py_RETURN_NONE;
}

static PyObject *stop(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    atomic_store(&stop_flag, 1);
    int n = nthreads;
    nthreads = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *blocking_call(PyObject *self, PyObject *f) {
    (void)self;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&host_lock);
    pthread_mutex_unlock(&host_lock);
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallObject(f, NULL);
    if (!r)
        PyErr_Print();
    Py_XDECREF(r);
    PyGILState_Release(g);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *hold(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&host_lock);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *unhold(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    pthread_mutex_unlock(&host_lock);
    Py_RETURN_NONE;
}

static PyObject *rounds(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyLong_FromLong(atomic_load(&rounds_done));
}

static PyMethodDef methods[] = {
    {"start", start, METH_VARARGS, NULL},
    {"stop", stop, METH_NOARGS, NULL},
    {"blocking_call", blocking_call, METH_O, NULL},
    {"rounds", rounds, METH_NOARGS, NULL},
    {"hold", hold, METH_NOARGS, NULL},
    {"unhold", unhold, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "gg_idioms", NULL, -1, methods, NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit_gg_idioms(void) { return PyModule_Create(&def); }

/* PEP 788 host 4: views and guards of a subinterpreter (written against the 3.15 API only).
 *
 *   pep788_subinterp THREADS
 *
 * The main thread creates a subinterpreter (Py_NewInterpreter: legacy config, shared GIL), takes
 * a view and a guard of it there (PyInterpreterView_FromCurrent, PyInterpreterGuard_FromCurrent)
 * and swaps back to the main interpreter. THREADS native threads each: EnsureFromView(sub view)
 * and check they run in the subinterpreter (a global only it has), then Ensure(sub guard) twice
 * nested, then EnsureFromView(main view) and check they run in the main interpreter. Then the
 * guard is closed, the subinterpreter ended (Py_EndInterpreter) and its view must give no guard
 * and no thread state; then Py_FinalizeEx. Prints: RESULT sub_ok=N main_ok=N errors=N
 * after_end=ok|BAD (exit 0 iff sub_ok=main_ok=THREADS, errors=0, after_end=ok). */
#include "pep788_common.h"
#include <pthread.h>

static PyInterpreterView *sub_view, *main_view;
static PyInterpreterGuard *sub_guard;
static long sub_ok, main_ok, errors;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void count(long *c) { pthread_mutex_lock(&mu); (*c)++; pthread_mutex_unlock(&mu); }

/* Which interpreter is attached: the value of __main__.WHERE there. */
static long where(void) {
    PyObject *m = PyImport_AddModule("__main__");
    PyObject *v = m ? PyObject_GetAttrString(m, "WHERE") : NULL;
    if (!v) { PyErr_Clear(); return -1; }
    long r = PyLong_AsLong(v);
    Py_DECREF(v);
    return r;
}

static void *worker(void *arg) {
    (void)arg;
    PyThreadStateToken *t = PyThreadState_EnsureFromView(sub_view);
    if (!t) { count(&errors); return NULL; }
    int ok = where() == 2;
    PyThreadStateToken *a = PyThreadState_Ensure(sub_guard); /* attached here: counted */
    PyThreadStateToken *b = a ? PyThreadState_Ensure(sub_guard) : NULL;
    ok = ok && a && b && where() == 2;
    if (b) PyThreadState_Release(b);
    if (a) PyThreadState_Release(a);
    ok = ok && where() == 2;
    PyThreadState_Release(t);
    if (ok) count(&sub_ok); else count(&errors);
    t = PyThreadState_EnsureFromView(main_view);
    if (!t) { count(&errors); return NULL; }
    if (where() == 1) count(&main_ok); else count(&errors);
    PyThreadState_Release(t);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s THREADS\n", argv[0]); return 2; }
    int n = atoi(argv[1]);
    if (n < 1 || n > 64) return 2;
    Py_Initialize();
    PyRun_SimpleString("WHERE = 1\n");
    main_view = PyInterpreterView_FromCurrent();
    PyThreadState *main_ts = PyThreadState_Get();
    PyThreadState *sub_ts = Py_NewInterpreter();
    if (!sub_ts || !main_view) { fprintf(stderr, "setup failed\n"); return 3; }
    PyRun_SimpleString("WHERE = 2\n");
    sub_view = PyInterpreterView_FromCurrent();
    sub_guard = PyInterpreterGuard_FromCurrent();
    if (!sub_view || !sub_guard) { fprintf(stderr, "sub view/guard failed\n"); return 3; }
    PyThreadState_Swap(main_ts);
    pthread_t th[64];
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    Py_END_ALLOW_THREADS
    PyInterpreterGuard_Close(sub_guard);
    PyThreadState_Swap(sub_ts);
    Py_EndInterpreter(sub_ts);
    PyThreadState_Swap(main_ts);
    int after_ok = 1;
    PyInterpreterGuard *g = PyInterpreterGuard_FromView(sub_view);
    if (g) { after_ok = 0; PyInterpreterGuard_Close(g); }
    Py_BEGIN_ALLOW_THREADS
    PyThreadStateToken *t = PyThreadState_EnsureFromView(sub_view);
    if (t) { after_ok = 0; PyThreadState_Release(t); }
    Py_END_ALLOW_THREADS
    PyInterpreterView_Close(sub_view);
    Py_FinalizeEx();
    PyInterpreterView_Close(main_view);
    printf("RESULT sub_ok=%ld main_ok=%ld errors=%ld after_end=%s\n", sub_ok, main_ok, errors, after_ok ? "ok" : "BAD");
    return (sub_ok == n && main_ok == n && errors == 0 && after_ok) ? 0 : 1;
}

/* PEP 788 host 2 (C++, built with -fno-exceptions -fno-rtti): interpreter guards held across the
 * workers' whole lifetime, RAII for guards and attachments.
 *
 *   pep788_guards WORKERS JOBS DELAY_US
 *
 * The main thread creates one guard per worker (PyInterpreterGuard_FromCurrent) and moves it into
 * the worker; each worker runs JOBS callbacks, each inside PyThreadState_Ensure(guard) with a
 * nested PyThreadState_Ensure on the same guard, and closes its guard when it ends. After
 * DELAY_US the main thread calls Py_FinalizeEx: finalization must wait for the guards, so every
 * job of every worker runs (ran = WORKERS*JOBS, no NULL from Ensure). Also: a guard taken from
 * an atexit handler succeeds (finalization has not begun), one taken from a __del__ run during
 * finalization fails with an exception (its type name is printed), and after Py_FinalizeEx a view
 * of the main interpreter gives no guard.
 * Prints: RESULT ran=N expected=N ensure_null=N nested_null=N errors=N vanished=N
 *         atexit_guard=ok|NULL del_guard=<exception type>|GOT|NOTRUN after_finalize=ok|BAD */
#include "pep788_common.h"
#include <atomic>
#include <thread>
#include <vector>

namespace {

class Guard {
    PyInterpreterGuard *g_;
public:
    explicit Guard(PyInterpreterGuard *g) noexcept : g_(g) {}
    Guard(Guard &&o) noexcept : g_(o.g_) { o.g_ = nullptr; }
    Guard(const Guard &) = delete;
    Guard &operator=(const Guard &) = delete;
    ~Guard() { if (g_) PyInterpreterGuard_Close(g_); }
    PyInterpreterGuard *get() const noexcept { return g_; }
    explicit operator bool() const noexcept { return g_ != nullptr; }
};

class Attached {
    PyThreadStateToken *t_;
public:
    explicit Attached(const Guard &g) noexcept : t_(PyThreadState_Ensure(g.get())) {}
    Attached(const Attached &) = delete;
    Attached &operator=(const Attached &) = delete;
    ~Attached() { if (t_) PyThreadState_Release(t_); }
    explicit operator bool() const noexcept { return t_ != nullptr; }
};

std::atomic<long> ran{0}, ensure_null{0}, nested_null{0}, errors{0};
PyObject *work_fn;
char atexit_guard[64] = "NOTRUN", del_guard[64] = "NOTRUN";

/* host.guard_probe(where): take and close a guard of the current interpreter; record "ok", or
 * the type of the exception set with the NULL. */
PyObject *guard_probe(PyObject *, PyObject *arg) {
    char *dst = PyLong_AsLong(arg) == 0 ? atexit_guard : del_guard;
    PyInterpreterGuard *g = PyInterpreterGuard_FromCurrent();
    if (g) {
        snprintf(dst, 64, "%s", dst == atexit_guard ? "ok" : "GOT");
        PyInterpreterGuard_Close(g);
    } else if (PyErr_Occurred()) {
        PyObject *t = PyErr_Occurred();
        snprintf(dst, 64, "%s", ((PyTypeObject *)t)->tp_name);
        PyErr_Clear();
    } else {
        snprintf(dst, 64, "NULL-without-exception");
    }
    Py_RETURN_NONE;
}
PyMethodDef host_methods[] = {{"guard_probe", guard_probe, METH_O, nullptr}, {nullptr, nullptr, 0, nullptr}};
PyModuleDef host_module = {PyModuleDef_HEAD_INIT, "host", nullptr, -1, host_methods, nullptr, nullptr, nullptr, nullptr};
PyObject *init_host() { return PyModule_Create(&host_module); }

const char PROBES[] =
    "import atexit, host, sys, types\n"
    "atexit.register(host.guard_probe, 0)\n"
    "class _D:\n"
    "    def __del__(self, probe=host.guard_probe):\n"
    "        probe(1)\n"
    /* Not in __main__ (work_fn's globals keep that dict alive): a module only sys.modules holds,
     * freed when finalization clears sys.modules, after the interpreter stopped taking guards. */
    "_m = types.ModuleType('_gg_probe')\n"
    "_m.d = _D()\n"
    "sys.modules['_gg_probe'] = _m\n"
    "del _m\n";

void worker(Guard g, int jobs, std::atomic<int> *ended) {
    for (int j = 0; j < jobs; j++) {
        Attached a(g);
        if (!a) { ensure_null++; continue; }
        if (!call_work(work_fn, j)) errors++;
        {
            Attached nested(g); /* already attached: only counted */
            if (!nested) nested_null++;
        }
        ran++;
    }
    ended->store(1);
} /* g closed here: finalization may go on once every worker is here */

} // namespace

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s WORKERS JOBS DELAY_US\n", argv[0]); return 2; }
    int nw = atoi(argv[1]), jobs = atoi(argv[2]);
    long delay = atol(argv[3]);
    if (nw < 1 || nw > 64 || jobs < 0) return 2;
    PyImport_AppendInittab("host", init_host);
    Py_Initialize();
    work_fn = load_work();
    if (!work_fn || PyRun_SimpleString(PROBES) != 0) { fprintf(stderr, "setup failed\n"); return 3; }
    std::vector<std::thread> th;
    std::vector<std::atomic<int>> ended(nw);
    for (int w = 0; w < nw; w++) {
        Guard g(PyInterpreterGuard_FromCurrent());
        if (!g) { fprintf(stderr, "PyInterpreterGuard_FromCurrent failed before finalization\n"); return 4; }
        ended[w].store(0);
        th.emplace_back(worker, static_cast<Guard &&>(g), jobs, &ended[w]);
    }
    Py_BEGIN_ALLOW_THREADS
    sleep_us(delay);
    Py_END_ALLOW_THREADS
    PyInterpreterView *main_view = PyInterpreterView_FromMain();
    if (Py_FinalizeEx() != 0) fprintf(stderr, "Py_FinalizeEx reported an error\n");
    bool after_ok = true;
    if (!main_view) after_ok = false;
    else {
        PyInterpreterGuard *g = PyInterpreterGuard_FromView(main_view);
        if (g) { after_ok = false; PyInterpreterGuard_Close(g); }
        PyInterpreterView_Close(main_view);
    }
    for (auto &t : th) t.join();
    int vanished = 0;
    for (auto &e : ended) vanished += !e.load();
    long expected = (long)nw * jobs;
    printf("RESULT ran=%ld expected=%ld ensure_null=%ld nested_null=%ld errors=%ld vanished=%d atexit_guard=%s del_guard=%s after_finalize=%s\n",
           ran.load(), expected, ensure_null.load(), nested_null.load(), errors.load(), vanished, atexit_guard, del_guard,
           after_ok ? "ok" : "BAD");
    bool ok = ran.load() == expected && ensure_null.load() == 0 && nested_null.load() == 0 && errors.load() == 0 &&
              vanished == 0 && after_ok && !strcmp(atexit_guard, "ok") && strcmp(del_guard, "GOT") && strcmp(del_guard, "NOTRUN");
    return ok ? 0 : 1;
}

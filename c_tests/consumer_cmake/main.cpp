// A mini embedding host built against an installed gilgate via find_package (C++17, no
// exceptions, no RTTI). Two worker threads call a Python function under gilgate::gil while the
// main thread finalizes with gilgate_finalize; each worker must then get a non-OK status from its
// guard (GILGATE_ERR_FINALIZING or GILGATE_ERR_NOT_INITIALIZED) and leave its loop normally.
// Also uses gilgate::allow_threads (with reacquire()) and gilgate::thread_state once.
//
// Prints `consumer_cmake: PASS ...` and exits 0 only if every check holds; otherwise prints
// `consumer_cmake: FAIL ...` and exits non-zero.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <gilgate.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unistd.h>

namespace {

constexpr int kWorkers = 2;
constexpr long kMinCallsBeforeFinalize = 25;

PyObject *g_work = nullptr; // __main__.work; touched only while a guard holds the GIL
std::atomic<bool> g_finalize_returned{false};
std::atomic<int> g_failures{0};

struct worker_state {
    std::atomic<long> calls{0};
    std::atomic<int> exit_status{-1};
    std::atomic<bool> done{false};
};
worker_state g_workers[kWorkers];

void fail(const char *what, long detail = 0) {
    std::fprintf(stderr, "consumer_cmake: check failed: %s (%ld)\n", what, detail);
    g_failures.fetch_add(1);
}

const char *status_name(int st) {
    switch (st) {
    case GILGATE_OK: return "OK";
    case GILGATE_ERR_FINALIZING: return "FINALIZING";
    case GILGATE_ERR_NOT_INITIALIZED: return "NOT_INITIALIZED";
    case GILGATE_ERR_NO_PYTHON: return "NO_PYTHON";
    case GILGATE_ERR_NULL_ARGUMENT: return "NULL_ARGUMENT";
    case GILGATE_ERR_INTERNAL: return "INTERNAL";
    case GILGATE_ERR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    default: return "?";
    }
}

// The GIL must be held. Calls work(n) and checks its result.
bool call_work(long n) {
    PyObject *r = PyObject_CallFunction(g_work, "l", n);
    if (r == nullptr) {
        PyErr_Print();
        return false;
    }
    long v = PyLong_AsLong(r);
    Py_DECREF(r);
    return v == n * (n - 1) / 2;
}

void worker(int id) {
    worker_state &me = g_workers[id];
    for (long i = 0;; i++) {
        gilgate::gil g;
        if (!g) {
            me.exit_status.store(g.status());
            break;
        }
        // A successful guard means: GIL held, runtime not finalizing.
        if (g_finalize_returned.load()) fail("guard succeeded after gilgate_finalize returned", id);
        if (!PyGILState_Check()) fail("guard succeeded without the GIL", id);
        if (!call_work(100 + (i * 7 + id) % 300)) fail("work() returned a wrong result", id);
        me.calls.fetch_add(1);
        if (i % 8 == 0) {
            g.release(); // early release, then yield outside the GIL
            std::this_thread::yield();
        }
    }
    me.done.store(true);
}

template <class Pred> bool wait_for(Pred pred, int ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// `consumer_cmake --allow-threads-death`: a worker leaves a gilgate::allow_threads scope without
// calling reacquire() after the runtime was finalized. The destructor cannot re-acquire and must
// apply gilgate's policy (GILGATE_ON_FINALIZE, abort by default) instead of returning as if it
// held the GIL. packaging_test.sh expects SIGABRT and the destructor's name in the diagnostic.
int allow_threads_death() {
    Py_InitializeEx(0);
    std::atomic<int> phase{0};
    std::thread t([&phase] {
        gilgate::gil g;
        if (!g) {
            phase.store(-1);
            return;
        }
        {
            gilgate::allow_threads nogil;
            phase.store(1);
            while (phase.load() != 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        } // ~allow_threads: the runtime is gone
        std::printf("consumer_cmake: FAIL ~allow_threads returned without the GIL\n");
        std::fflush(stdout);
        _exit(1);
    });
    {
        gilgate::allow_threads main_nogil;
        if (!wait_for([&phase] { return phase.load() != 0; }, 10000) || phase.load() != 1) {
            std::printf("consumer_cmake: FAIL the worker could not enter Python\n");
            std::fflush(stdout);
            _exit(2);
        }
        if (main_nogil.reacquire() != GILGATE_OK) _exit(3);
    }
    int py_rc = -1;
    if (gilgate_finalize(&py_rc) != GILGATE_OK || py_rc != 0) _exit(4);
    std::fprintf(stderr, "consumer_cmake: finalized; the worker's ~allow_threads must now apply the policy\n");
    phase.store(2);
    t.join(); // not reached with the abort policy
    std::printf("consumer_cmake: FAIL the process survived ~allow_threads\n");
    return 1;
}

} // namespace

int main(int argc, char **argv) {
    if (argc > 1 && std::strcmp(argv[1], "--allow-threads-death") == 0) return allow_threads_death();
    if (argc > 1) {
        std::fprintf(stderr, "usage: %s [--allow-threads-death]\n", argv[0]);
        return 64;
    }
    Py_InitializeEx(0);
    std::string pyversion = Py_GetVersion();
    pyversion = pyversion.substr(0, pyversion.find(' '));

    PyObject *main_dict = PyModule_GetDict(PyImport_AddModule("__main__"));
    PyObject *r = PyRun_String("def work(n):\n"
                               "    s = 0\n"
                               "    for i in range(n):\n"
                               "        s += i\n"
                               "    return s\n",
                               Py_file_input, main_dict, main_dict);
    if (r == nullptr) {
        PyErr_Print();
        return 70;
    }
    Py_DECREF(r);
    g_work = PyDict_GetItemString(main_dict, "work"); // borrowed
    Py_INCREF(g_work);
    PyInterpreterState *interp = PyThreadState_Get()->interp;

    std::thread workers[kWorkers];
    bool thread_state_ok = false;
    {
        // Py_BEGIN_ALLOW_THREADS: main lets the other threads run.
        gilgate::allow_threads nogil;
        if (!nogil.released()) fail("allow_threads released nothing");

        // gilgate::thread_state once, on a host-owned PyThreadState.
        std::thread ts_user([&] {
            PyThreadState *ts = PyThreadState_New(interp); // no GIL needed
            gilgate::thread_state attached(ts);
            if (!attached) {
                fail("thread_state guard", attached.status());
                return;
            }
            thread_state_ok = call_work(1000) && PyThreadState_Get() == ts;
            // The guard detaches ts; Py_FinalizeEx reclaims it with the interpreter's other states.
        });
        ts_user.join();
        if (!thread_state_ok) fail("work under gilgate::thread_state");

        for (int i = 0; i < kWorkers; i++) workers[i] = std::thread(worker, i);
        bool busy = wait_for([] {
            for (auto &w : g_workers)
                if (w.calls.load() < kMinCallsBeforeFinalize || w.done.load()) return false;
            return true;
        }, 10000);
        if (!busy) fail("workers did not get going");

        // Py_END_ALLOW_THREADS, fallible: the runtime is alive, so this must succeed.
        gilgate_status st = nogil.reacquire();
        if (st != GILGATE_OK) {
            std::fprintf(stderr, "consumer_cmake: FAIL reacquire: %s\n", gilgate_status_str(st));
            std::fflush(stderr);
            _exit(3); // no GIL: Python must not be touched, and the destructor must not run
        }
        if (!PyGILState_Check()) fail("reacquire() returned OK without the GIL");
    }
    long calls_before = g_workers[0].calls.load() + g_workers[1].calls.load();
    Py_DECREF(g_work); // workers use it only under a successful guard, which needs the GIL we hold

    // The workers keep calling while the main thread finalizes.
    int py_rc = -1;
    gilgate_status fst = gilgate_finalize(&py_rc);
    g_finalize_returned.store(true);
    if (fst != GILGATE_OK) fail("gilgate_finalize status", fst);
    if (py_rc != 0) fail("Py_FinalizeEx result", py_rc);

    bool all_done = wait_for([] {
        for (auto &w : g_workers)
            if (!w.done.load()) return false;
        return true;
    }, 10000);
    if (!all_done) {
        // A worker vanished (pthread_exit) or hangs inside Python: it can't be joined.
        std::printf("consumer_cmake: FAIL a worker did not come back after finalization\n");
        std::fflush(stdout);
        _exit(4);
    }
    for (auto &t : workers) t.join();
    for (int i = 0; i < kWorkers; i++) {
        int es = g_workers[i].exit_status.load();
        if (es != GILGATE_ERR_FINALIZING && es != GILGATE_ERR_NOT_INITIALIZED) fail("worker exit status", es);
    }

    // After finalization, a guard on the main thread fails too, and holds nothing.
    gilgate_status after;
    {
        gilgate::gil g;
        after = g.status();
        if (g) fail("guard succeeded after finalization");
    }
    if (after != GILGATE_ERR_NOT_INITIALIZED) fail("main guard after finalize", after);
    if (gilgate_runtime_status() != GILGATE_ERR_NOT_INITIALIZED) fail("runtime status", gilgate_runtime_status());

    struct gilgate_stats stats;
    std::memset(&stats, 0, sizeof stats);
    if (gilgate_stats(&stats) != GILGATE_OK) fail("gilgate_stats");

    long total = g_workers[0].calls.load() + g_workers[1].calls.load();
    int failures = g_failures.load();
    std::printf("consumer_cmake: %s python=%s gilgate=%s calls=%ld (%ld before finalize) "
                "worker_exit=%s,%s thread_state=%s drains=%llu drain_last_ms=%.1f\n",
                failures ? "FAIL" : "PASS", pyversion.c_str(), gilgate_version(), total, calls_before,
                status_name(g_workers[0].exit_status.load()), status_name(g_workers[1].exit_status.load()),
                thread_state_ok ? "ok" : "failed", static_cast<unsigned long long>(stats.drains),
                static_cast<double>(stats.drain_last_ns) / 1e6);
    return failures ? 1 : 0;
}

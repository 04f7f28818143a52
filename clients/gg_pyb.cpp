// pybind11 extension module for the real-client suite (clients/README.md).
//
// start(n, callback): n "fresh" std::threads and n "owning" std::threads call `callback`.
//   fresh:  each iteration py::gil_scoped_acquire on a thread without a thread state
//           (PyThreadState_New + PyEval_AcquireThread; the destructor ends with
//           PyThreadState_DeleteCurrent), calls the callback, releases.
//   owning: one py::gil_scoped_acquire kept for the thread's life; each iteration releases the
//           GIL with py::gil_scoped_release while blocking on a host std::mutex, takes the GIL
//           back while holding that mutex, calls the callback, unlocks.
// start_idle(n, callback): n "idle" workers (below), for variant polite-idle.
// stop(): sets the flag, joins every thread with the GIL released (py::gil_scoped_release).
// counts(): (started, finished) workers; a worker increments `finished` only on a clean exit
//   from its loop, so started != finished after stop() means a thread vanished.
// Called from Python's own daemon threads (variants daemon, daemon-cb: threading.Thread(daemon=True)
// calling these in a loop while the main thread returns):
//   blocking(ms): py::gil_scoped_release around ms of blocking work (a sleep):
//           PyEval_SaveThread in the constructor, PyEval_RestoreThread in the destructor, which
//           CPython 3.8-3.13 end with pthread_exit when finalizing (a forced unwind through an
//           implicitly noexcept destructor: std::terminate).
//   blocking_cb(ms, cb): inside a py::gil_scoped_release, half the sleep, then a
//           py::gil_scoped_acquire (the thread's own state: PyEval_AcquireThread) calling the
//           Python callback cb, then the other half.
#include <pybind11/pybind11.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace py = pybind11;

static std::atomic<bool> g_stop{false};
static std::atomic<int> g_started{0}, g_finished{0};
static std::atomic<long> g_calls{0};
// Leaked on purpose: rude programs exit with these threads running, and a joinable
// std::thread's destructor would call std::terminate.
static std::vector<std::thread> *g_threads = new std::vector<std::thread>();
static std::mutex g_host_mutex;
static py::object *g_cb = nullptr;  // leaked on purpose (never decref'd during finalization)

static void call_cb() {
    try {
        (*g_cb)();
        g_calls.fetch_add(1, std::memory_order_relaxed);
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("gg_pyb callback");
    }
}

static void fresh_worker() {
    g_started++;
    while (!g_stop.load()) {
        py::gil_scoped_acquire acq;
        call_cb();
    }
    g_finished++;
}

static void owning_worker() {
    g_started++;
    py::gil_scoped_acquire acq;  // this thread's state, for its whole life
    while (!g_stop.load()) {
        std::unique_lock<std::mutex> lk(g_host_mutex, std::defer_lock);
        {
            py::gil_scoped_release rel;  // PyEval_SaveThread ... PyEval_RestoreThread
            lk.lock();
        }
        call_cb();  // GIL and host mutex both held
        lk.unlock();
    }
    g_finished++;
}

// "idle" workers (variant polite-idle): a few fresh gil_scoped_acquire calls, then the thread
// stays alive in C, outside Python (no thread state: the last release deleted it), until the
// process exits, like an idle pool thread. Nothing of it is inside CPython at finalization.
static std::atomic<int> g_idle{0};
// Leaked on purpose: destroying a condition variable with waiters blocks in exit() (glibc).
static std::mutex *g_idle_mutex = new std::mutex();
static std::condition_variable *g_idle_cv = new std::condition_variable();
static void idle_worker(int iterations) {
    g_started++;
    for (int i = 0; i < iterations; i++) {
        py::gil_scoped_acquire acq;
        call_cb();
    }
    g_idle++;
    std::unique_lock<std::mutex> lk(*g_idle_mutex);
    g_idle_cv->wait(lk, [] { return false; });  // never returns; the process exit ends it
}

PYBIND11_MODULE(gg_pyb, m) {
    m.def("start_idle", [](int n, py::object cb) {
        g_cb = new py::object(std::move(cb));
        for (int i = 0; i < n; i++) std::thread(idle_worker, 200).detach();
    });
    m.def("idle_count", []() { return g_idle.load(); });
    m.def("start", [](int n, py::object cb) {
        g_cb = new py::object(std::move(cb));
        g_stop = false;
        for (int i = 0; i < n; i++) {
            g_threads->emplace_back(fresh_worker);
            g_threads->emplace_back(owning_worker);
        }
    });
    m.def("stop", []() {
        g_stop = true;
        py::gil_scoped_release rel;
        for (auto &t : *g_threads)
            if (t.joinable()) t.join();
        g_threads->clear();
    });
    m.def("counts", []() { return py::make_tuple(g_started.load(), g_finished.load(), g_calls.load()); });
    m.def("blocking", [](int ms) {
        py::gil_scoped_release rel;
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    });
    m.def("blocking_cb", [](int ms, py::object cb) {
        py::gil_scoped_release rel;
        std::this_thread::sleep_for(std::chrono::milliseconds(ms / 2));
        {
            py::gil_scoped_acquire acq;
            cb();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(ms - ms / 2));
    });
}

// nanobind 2.x extension module for the real-client suite (clients/README.md).
//
// start(n, callback): n "fresh" std::threads and n "owning" std::threads call `callback`.
//   fresh:  each iteration nb::gil_scoped_acquire on a thread without a thread state (nanobind
//           2.x: PyGILState_Ensure, released by PyGILState_Release, which deletes the state),
//           calls the callback.
//   owning: one nb::gil_scoped_acquire kept for the thread's life; each iteration releases the
//           GIL with nb::gil_scoped_release (PyEval_SaveThread ... PyEval_RestoreThread) while
//           blocking on a host std::mutex, takes the GIL back while holding that mutex, calls the
//           callback, unlocks.
// stop(): sets the flag, joins every thread with the GIL released (nb::gil_scoped_release).
// counts(): (started, finished, calls); a worker increments `finished` only on a clean exit
//   from its loop, so started != finished after stop() means a thread vanished.
// Called from Python's own daemon threads (variants daemon, daemon-cb: threading.Thread(daemon=True)
// calling these in a loop while the main thread returns):
//   blocking(ms): nb::gil_scoped_release around ms of blocking work (a sleep): PyEval_SaveThread
//           ... PyEval_RestoreThread in the destructor.
//   blocking_cb(ms, cb): inside an nb::gil_scoped_release, half the sleep, then an
//           nb::gil_scoped_acquire (nanobind 2.x: PyGILState_Ensure on the thread's own state)
//           calling the Python callback cb, then the other half.
#include <nanobind/nanobind.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace nb = nanobind;

static std::atomic<bool> g_stop{false};
static std::atomic<int> g_started{0}, g_finished{0};
static std::atomic<long> g_calls{0};
// Leaked on purpose: rude programs exit with these threads running, and a joinable
// std::thread's destructor would call std::terminate.
static std::vector<std::thread> *g_threads = new std::vector<std::thread>();
static std::mutex g_host_mutex;
static nb::object *g_cb = nullptr;  // leaked on purpose (never decref'd during finalization)

static void call_cb() {
    try {
        (*g_cb)();
        g_calls.fetch_add(1, std::memory_order_relaxed);
    } catch (nb::python_error &e) {
        e.discard_as_unraisable("gg_nb callback");
    }
}

static void fresh_worker() {
    g_started++;
    while (!g_stop.load()) {
        nb::gil_scoped_acquire acq;
        call_cb();
    }
    g_finished++;
}

static void owning_worker() {
    g_started++;
    nb::gil_scoped_acquire acq;  // this thread's state, for its whole life
    while (!g_stop.load()) {
        std::unique_lock<std::mutex> lk(g_host_mutex, std::defer_lock);
        {
            nb::gil_scoped_release rel;
            lk.lock();
        }
        call_cb();  // GIL and host mutex both held
        lk.unlock();
    }
    g_finished++;
}

NB_MODULE(gg_nb, m) {
    // The leaked callback and the module's functions outlive finalization in rude programs:
    // nanobind's leak report would only add noise to stderr.
    nb::set_leak_warnings(false);
    m.def("start", [](int n, nb::object cb) {
        g_cb = new nb::object(std::move(cb));
        g_stop = false;
        for (int i = 0; i < n; i++) {
            g_threads->emplace_back(fresh_worker);
            g_threads->emplace_back(owning_worker);
        }
    });
    m.def("stop", []() {
        g_stop = true;
        nb::gil_scoped_release rel;
        for (auto &t : *g_threads)
            if (t.joinable()) t.join();
        g_threads->clear();
    });
    m.def("counts", []() { return nb::make_tuple(g_started.load(), g_finished.load(), g_calls.load()); });
    m.def("blocking", [](int ms) {
        nb::gil_scoped_release rel;
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    });
    m.def("blocking_cb", [](int ms, nb::object cb) {
        nb::gil_scoped_release rel;
        std::this_thread::sleep_for(std::chrono::milliseconds(ms / 2));
        {
            nb::gil_scoped_acquire acq;
            cb();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(ms - ms / 2));
    });
}

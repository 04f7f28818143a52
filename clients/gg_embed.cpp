// pybind11 embedding host for the real-client suite (clients/README.md).
// usage: gg_embed polite|rude
//   Starts the interpreter (py::initialize_interpreter), defines a Python callback, starts 2
//   "fresh" and 2 "owning" std::threads (same workers as gg_pyb.cpp) calling it, lets them run,
//   then
//   polite: stops and joins them (GIL released), then py::finalize_interpreter();
//   rude:   py::finalize_interpreter() while they still call in; joining after finalization is
//           impossible, so the threads are left running and the process ends with _exit(0) after
//           the final marker line `RESULT ... done`.
#include <pybind11/embed.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <vector>

namespace py = pybind11;

static std::atomic<bool> g_stop{false};
static std::atomic<int> g_started{0}, g_finished{0};
static std::atomic<long> g_calls{0};
static std::vector<std::thread> *g_threads = new std::vector<std::thread>();
static std::mutex g_host_mutex;
static py::object *g_cb = nullptr;

static void call_cb() {
    try {
        (*g_cb)();
        g_calls.fetch_add(1, std::memory_order_relaxed);
    } catch (py::error_already_set &e) {
        e.discard_as_unraisable("gg_embed callback");
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
    py::gil_scoped_acquire acq;
    while (!g_stop.load()) {
        std::unique_lock<std::mutex> lk(g_host_mutex, std::defer_lock);
        {
            py::gil_scoped_release rel;
            lk.lock();
        }
        call_cb();
        lk.unlock();
    }
    g_finished++;
}

int main(int argc, char **argv) {
    bool rude = argc > 1 && std::strcmp(argv[1], "rude") == 0;
    int n = 2;
    int run_ms = getenv("GG_CLIENT_RUN_MS") ? atoi(getenv("GG_CLIENT_RUN_MS")) : 300;
    py::initialize_interpreter();
    {
        py::object main_dict = py::module_::import("__main__").attr("__dict__");
        py::exec(R"(
import time
def cb():
    s = 0
    for i in range(50):
        s += i
    time.sleep(0)
)", main_dict);
        g_cb = new py::object(main_dict["cb"]);  // leaked on purpose
    }
    {
        py::gil_scoped_release rel;
        for (int i = 0; i < n; i++) {
            g_threads->emplace_back(fresh_worker);
            g_threads->emplace_back(owning_worker);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(run_ms));
        // Then until at least one call was made (at most 20 s more): "calls > 0" below must not
        // depend on how quickly a loaded machine schedules the threads.
        for (int i = 0; i < 2000 && g_calls.load() == 0; i++)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (!rude) {
            g_stop = true;
            for (auto &t : *g_threads) t.join();
            g_threads->clear();
        }
    }
    long calls = g_calls.load();
    if (rude) {
        std::printf("START client=embed variant=rude started=%d calls=%ld\n", g_started.load(), calls);
        std::fflush(stdout);
        py::finalize_interpreter();
        // The final marker line, from the main thread once finalization returned.
        std::printf("RESULT client=embed variant=rude started=%d calls=%ld done\n", g_started.load(), calls);
        std::fflush(stdout);
        _exit(calls > 0 ? 0 : 3);
    }
    py::finalize_interpreter();
    int vanished = g_started.load() - g_finished.load();
    std::printf("RESULT client=embed variant=polite started=%d finished=%d vanished=%d calls=%ld\n",
                g_started.load(), g_finished.load(), vanished, calls);
    return (calls > 0 && vanished == 0) ? 0 : 3;
}

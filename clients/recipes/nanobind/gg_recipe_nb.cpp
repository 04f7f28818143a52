// Recipe (docs/recipes.md): a nanobind extension module with its own threads that call into
// Python through gilgate.hpp instead of nb::gil_scoped_acquire, and nanobind's own guard
// (nb::gil_scoped_release) kept where Python's threads call the module. Built with CMake
// (find_package(gilgate CONFIG)) and with pkg-config, and run through finalization by
// harness/tests/recipes.rs.
//
// start(n, callback): 2n threads of the module's own, each looping until gilgate says no:
//   a: lock the host mutex; gilgate::gil (was: nb::gil_scoped_acquire); callback; unlock.
//   b: gilgate::gil; callback; gilgate::allow_threads while locking the host mutex (was:
//      nb::gil_scoped_release), reacquire() (fallible); callback; unlock.
// wait_ready(n): called by Python's main thread; blocks with nb::gil_scoped_release (nanobind's
//   guard is right on a thread Python owns) until n workers made a call.
// A C atexit handler (runs after Py_FinalizeEx) waits for the workers, takes the host mutex,
// prints RESULT started=N finished=N vanished=N ok=N finalizing=N notinit=N other=N and _exits 0
// only if every worker ended with FINALIZING or NOT_INITIALIZED and none vanished.
#include <nanobind/nanobind.h>

#include <gilgate.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace nb = nanobind;

namespace {
std::mutex host;
std::atomic<int> started{0}, finished{0}, ready{0}, fin{0}, notinit{0}, other{0};
std::atomic<long> ok{0};
nb::object *callback = nullptr; // never destroyed: the threads outlive the interpreter

void end(gilgate_status st) {
    if (st == GILGATE_ERR_FINALIZING) fin++;
    else if (st == GILGATE_ERR_NOT_INITIALIZED) notinit++;
    else other++;
    finished++;
}

void call() { // GIL held
    try {
        (*callback)();
        ok++;
    } catch (nb::python_error &e) {
        e.discard_as_unraisable("gg_recipe_nb callback");
    }
}

void worker_a() {
    bool first = true;
    for (;;) {
        std::lock_guard<std::mutex> lk(host);
        gilgate::gil g; // was: nb::gil_scoped_acquire g;
        if (!g) {
            end(g.status()); // no GIL held, nothing to release
            return;
        }
        call();
        if (first) { first = false; ready++; }
    }
}

void worker_b() {
    bool first = true;
    for (;;) {
        gilgate::gil g;
        if (!g) {
            end(g.status());
            return;
        }
        call();
        gilgate::allow_threads nogil; // was: nb::gil_scoped_release nogil;
        std::unique_lock<std::mutex> lk(host);
        if (gilgate_status st = nogil.reacquire()) {
            end(st); // finalizing: the GIL is not held; g's release is skipped by gilgate
            return;
        }
        call(); // GIL and host mutex held
        if (first) { first = false; ready++; }
    }
}

void report() {
    for (int i = 0; i < 1000 && finished.load() < started.load(); i++) usleep(10000);
    { std::lock_guard<std::mutex> lk(host); }
    int vanished = started.load() - finished.load();
    std::printf("RESULT started=%d finished=%d vanished=%d ok=%ld finalizing=%d notinit=%d other=%d\n",
                started.load(), finished.load(), vanished, ok.load(), fin.load(), notinit.load(), other.load());
    std::fflush(stdout);
    _exit(vanished || other.load() || ok.load() == 0 || fin.load() + notinit.load() != started.load() ? 3 : 0);
}
} // namespace

NB_MODULE(gg_recipe_nb, m) {
    m.def("start", [](int n, nb::object cb) {
        callback = new nb::object(std::move(cb));
        std::atexit(report);
        for (int i = 0; i < n; i++) {
            started += 2;
            std::thread(worker_a).detach();
            std::thread(worker_b).detach();
        }
    });
    m.def("wait_ready", [](int n) {
        nb::gil_scoped_release nogil; // a Python thread: nanobind's guard is the right tool here
        for (int i = 0; i < 30000 && ready.load() < n; i++) usleep(1000);
        return ready.load();
    });
}
